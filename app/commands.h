/* One function per subcommand; each returns the process exit code
 * (0 success, 1 failure of the computation or input, 2 bad usage). */
#ifndef SPINIFEL_APP_COMMANDS_H
#define SPINIFEL_APP_COMMANDS_H

#include "spinifel/spinifel.h"

int cmd_info(int argc, char **argv);
int cmd_selfcheck(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_fsc(int argc, char **argv);
int cmd_orientations(int argc, char **argv);
int cmd_plot(int argc, char **argv);
/* The pictures and report.html of a reconstruction's output directory (plot). */
int plot_outdir(const char *outdir, char *msg, size_t len);
/* The same pictures without report.html (watch writes its own); convergence.png only
 * when OUTDIR/log.jsonl is there. */
int plot_pictures(const char *outdir, char *msg, size_t len);
int cmd_watch(int argc, char **argv);

#endif
