/* spinifel: the command-line program. It parses arguments and reports; libspinifel computes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel <command> [options]\n"
          "\n"
          "commands:\n"
          "  info        print the build configuration and machine figures\n"
          "  selfcheck   check the NUFFT against direct sums (float and double, types 1 and 2)\n"
          "  simulate    simulate diffraction images of a molecule (PDB or built-in phantom)\n"
          "  reconstruct recover orientations and the density (M-TIP)\n"
          "  demo        simulate the built-in phantom and reconstruct it (a few minutes)\n"
          "  fsc         align two densities (or one and a PDB / the phantom), FSC resolution\n"
          "  orientations  accuracy of reconstructed orientations against a dataset's truth\n"
          "  plot        pictures and report.html of a reconstruction's output directory\n"
          "  watch       reconstruct while bursts of images arrive in a folder; feedback per burst\n"
          "  help        this message\n"
          "\n"
          "Run 'spinifel <command> --help' for a command's options.\n");
}

/* OpenMP threads that wait at a barrier spin by default (libgomp: about 300,000 turns
 * before sleeping). On a machine another job shares, the spinning takes the cores the
 * other threads need: the demo ran 200 s against 79-99 s with waiting threads asleep
 * (OMP_WAIT_POLICY=passive), the same bits (BENCHMARKS.md). libgomp reads the variable
 * when it is loaded, before main, so the program sets it and starts itself again, once;
 * a value the user set is kept. */
static void prefer_passive_waiting(char **argv)
{
  if (getenv("OMP_WAIT_POLICY")) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv); /* returns only on failure: carry on as started */
}

/* A command that runs over MPI ranks when started by mpirun (one process otherwise). */
static int with_mpi(int (*command)(int, char **), int argc, char **argv)
{
  if (spf_mpi_init(&argc, &argv)) {
    fprintf(stderr, "spinifel: MPI failed to start\n");
    return 1;
  }
  const int rc = command(argc - 1, argv + 1);
  spf_mpi_finalize();
  return rc;
}

int main(int argc, char **argv)
{
  prefer_passive_waiting(argv);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "selfcheck")) return cmd_selfcheck(argc - 1, argv + 1);
  if (!strcmp(cmd, "simulate")) return cmd_simulate(argc - 1, argv + 1);
  /* Under mpirun every rank runs these with its share of the images. */
  if (!strcmp(cmd, "reconstruct")) return with_mpi(cmd_reconstruct, argc, argv);
  if (!strcmp(cmd, "watch")) return with_mpi(cmd_watch, argc, argv);
  if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
  if (!strcmp(cmd, "fsc")) return cmd_fsc(argc - 1, argv + 1);
  if (!strcmp(cmd, "orientations")) return cmd_orientations(argc - 1, argv + 1);
  if (!strcmp(cmd, "plot")) return cmd_plot(argc - 1, argv + 1);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    /* 'spinifel help COMMAND' is 'spinifel COMMAND --help'. */
    if (argc > 2 && strcmp(argv[2], "help") && argv[2][0] != '-') {
      argv[1] = argv[2];
      argv[2] = "--help";
      argc = 3;
      return main(argc, argv);
    }
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("spinifel %s\n", SPINIFEL_VERSION);
    return 0;
  }
  fprintf(stderr, "spinifel: unknown command '%s' (try 'spinifel help')\n", cmd);
  return 2;
}
