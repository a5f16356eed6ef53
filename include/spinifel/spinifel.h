/* libspinifel: single-particle imaging reconstruction (M-TIP on Cartesian NUFFTs).
 * The public interface: include this header, link -lspinifel. */
#ifndef SPINIFEL_H
#define SPINIFEL_H

#define SPINIFEL_VERSION "0.1.0"

#include "spinifel/align.h"
#include "spinifel/dataset.h"
#include "spinifel/detector.h"
#include "spinifel/error.h"
#include "spinifel/fsc.h"
#include "spinifel/intensity.h"
#include "spinifel/likelihood.h"
#include "spinifel/matching.h"
#include "spinifel/merging.h"
#include "spinifel/molecule.h"
#include "spinifel/mpi.h"
#include "spinifel/mrc.h"
#include "spinifel/photons.h"
#include "spinifel/posterior.h"
#include "spinifel/nufft.h"
#include "spinifel/orientation.h"
#include "spinifel/orientation_error.h"
#include "spinifel/phasing.h"
#include "spinifel/picture.h"
#include "spinifel/random.h"
#include "spinifel/reconstruct.h"
#include "spinifel/results.h"
#include "spinifel/rotation.h"
#include "spinifel/scattering.h"
#include "spinifel/shellcorr.h"
#include "spinifel/simulate.h"
#include "spinifel/slicing.h"
#include "spinifel/watch.h"

#endif
