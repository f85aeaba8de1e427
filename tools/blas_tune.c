/* blas_tune.c: `transit` starts again with OPENBLAS_CORETYPE set when the OpenBLAS it loaded chose
 * kernels weaker than this CPU's (tr_blas_better_coretype, cpu/blas_tune.c, says why and when). A
 * user's own OPENBLAS_CORETYPE always wins, and TRANSIT_NO_BLAS_TUNE=1 turns this off. */
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"

void cli_tune_blas(char **argv)
{
    const char *core = tr_blas_better_coretype();
    if (!core)
        return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("TRANSIT_NO_BLAS_TUNE", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels, which are still correct */
    unsetenv("OPENBLAS_CORETYPE");
}
