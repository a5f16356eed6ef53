/* libspinifel: single-particle imaging reconstruction (M-TIP on Cartesian NUFFTs).
 * The public interface: include this header, link -lspinifel. */
#ifndef SPINIFEL_H
#define SPINIFEL_H

#define SPINIFEL_VERSION "0.1.0"

#include "spinifel/error.h"
#include "spinifel/nufft.h"
#include "spinifel/random.h"
#include "spinifel/scattering.h"

#endif
