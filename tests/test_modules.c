/* test_modules.c: the GPU backends stay out of a process that does not ask for them (issue 18).
 *
 * The GPU backends are modules (backends/registry.c) that link their runtimes, so a CPU run must not
 * map libcuda, libcudart, cuBLAS, the Vulkan loader or the OpenCL ICD loader:
 *   - in this process (linked to libtransit.so as any program is): /proc/self/maps before and after
 *     loading the default model and generating on the CPU; then, as a control that the check can
 *     fail, after listing the backends (`transit info`), which opens every module built;
 *   - in the command: the dynamic loader's own list of the objects it opened (LD_DEBUG=files) for
 *     `transit help` and a CPU `transit run`, against `transit info`'s;
 *   - without the modules' directory (TRANSIT_BACKEND_DIR elsewhere) and, for CUDA, without its
 *     libraries (the loader told to ignore its cache, where the CUDA toolkit's directory is listed),
 *     the CPU still runs, and `transit info` and `--backend cuda` say why CUDA is unavailable. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "transit.h"
#include "test_util.h"

static const char *const gpu_libs[] = {"libcuda.so", "libcudart", "libcublas", "libvulkan", "libOpenCL", "libnvidia"};
#define N_GPU_LIBS (int)(sizeof gpu_libs / sizeof gpu_libs[0])

/* The first GPU runtime named in text, or NULL. */
static const char *gpu_lib_in(const char *text)
{
    for (int i = 0; text && i < N_GPU_LIBS; i++)
        if (strstr(text, gpu_libs[i]))
            return gpu_libs[i];
    return NULL;
}

/* /proc/self/maps as text (a file whose size reads as 0: read until the end); NULL unless it lists
 * libtransit.so itself, so that an empty read cannot pass for "nothing mapped". */
static char *maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (f && buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 4096) {
            char *more = realloc(buf, cap *= 2);
            if (!more)
                break;
            buf = more;
        }
    }
    if (f)
        fclose(f);
    if (buf)
        buf[n] = '\0';
    if (buf && !strstr(buf, "libtransit.so")) {
        CHECK(0, "/proc/self/maps does not list libtransit.so (%zu bytes read)", n);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Runs `transit ARGS` with the environment ENV in front (may be ""); stdout and stderr to files read
 * back. Returns the exit status. */
static int run(const char *env, const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env %s %s %s >/tmp/tr_modules_out.%d 2>/tmp/tr_modules_err.%d </dev/null", env,
             TR_TRANSIT_BIN, args, (int)getpid(), (int)getpid());
    int st = system(cmd);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tr_modules_out.%d", (int)getpid());
    if (out)
        *out = tr_read_file(path, NULL);
    unlink(path);
    snprintf(path, sizeof path, "/tmp/tr_modules_err.%d", (int)getpid());
    if (err)
        *err = tr_read_file(path, NULL);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int module_built(const char *name)
{
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/../transit-backends/libtransit-%s.so", TR_BUILD_TESTS_DIR, name);
    return stat(path, &sb) == 0;
}

static void test_this_process(const char *model)
{
    char *m = maps();
    CHECK(m && !gpu_lib_in(m), "at start this process maps %s", gpu_lib_in(m));
    free(m);
    tr_model_params mp = tr_model_default_params();
    mp.backend = "cpu";
    mp.n_threads = 2;
    tr_model *model_h = NULL;
    tr_context *ctx = NULL;
    CHECK(tr_model_load(model, &mp, &model_h) == TR_OK, "load: %s", tr_last_error());
    if (model_h) {
        tr_context_params cp = tr_context_default_params();
        cp.n_ctx = 64;
        CHECK(tr_context_create(model_h, &cp, &ctx) == TR_OK, "context: %s", tr_last_error());
        int32_t ids[4] = {1, 300, 400, 500};
        if (ctx)
            CHECK(tr_eval(ctx, ids, 4, 0) == TR_OK, "eval: %s", tr_last_error());
    }
    m = maps();
    CHECK(m && !gpu_lib_in(m), "after a CPU generation this process maps %s", gpu_lib_in(m));
    free(m);
    tr_context_free(ctx);
    tr_model_free(model_h);
    /* the control: listing the backends opens the modules, and their runtimes show up */
    char list[16384];
    tr_backend_list(list, sizeof list);
    m = maps();
    if (module_built("vulkan"))
        CHECK(m && strstr(m, "libvulkan") && strstr(m, "libtransit-vulkan.so"),
              "after listing the backends, the Vulkan module and loader are not mapped");
    if (module_built("cuda") && strstr(list, "cuda: unavailable: cannot load") == NULL)
        CHECK(m && strstr(m, "libcudart") && strstr(m, "libtransit-cuda.so"),
              "after listing the backends, the CUDA module and runtime are not mapped");
    printf("maps: no GPU runtime until a backend is asked for; then %s%s\n", m && strstr(m, "libvulkan") ? "libvulkan " : "",
           m && strstr(m, "libcudart") ? "libcudart" : "");
    free(m);
}

static void test_command(void)
{
    char *out = NULL, *err = NULL;
    /* the loader's list of objects it opened: "file=libvulkan.so.1 [0];  needed by ..." */
    CHECK(run("LD_DEBUG=files", "help", &out, &err) == 0 && err && !gpu_lib_in(err) && strstr(err, "file=libtransit.so"),
          "transit help opened %s", gpu_lib_in(err) ? gpu_lib_in(err) : "(or did not run)");
    free(out);
    free(err);
    CHECK(run("LD_DEBUG=files", "run -n 8 --temp 0 -p Once", &out, &err) == 0 && err && !gpu_lib_in(err),
          "a CPU run opened %s", gpu_lib_in(err) ? gpu_lib_in(err) : "(or did not run)");
    free(out);
    free(err);
    if (module_built("vulkan")) {
        CHECK(run("LD_DEBUG=files", "info", &out, &err) == 0 && err && strstr(err, "libvulkan"),
              "transit info did not open the Vulkan loader (the control)");
        free(out);
        free(err);
    }
}

static void test_without_modules(void)
{
    char *want = NULL, *out = NULL;
    CHECK(run("", "run -n 12 --temp 0 -p Once", &want, NULL) == 0 && want, "a CPU run");
    /* the modules' directory gone: the CPU runs, every GPU backend says where it looked */
    CHECK(run("TRANSIT_BACKEND_DIR=/nonexistent", "run -n 12 --temp 0 -p Once", &out, NULL) == 0 && out && want &&
              !strcmp(out, want),
          "a CPU run without the modules: '%s'", out ? out : "");
    free(out);
    CHECK(run("TRANSIT_BACKEND_DIR=/nonexistent", "info", &out, NULL) == 0 && out &&
              strstr(out, "cuda: unavailable: not built: no /nonexistent/libtransit-cuda.so") &&
              strstr(out, "vulkan: unavailable: not built: no /nonexistent/libtransit-vulkan.so"),
          "info without the modules: '%s'", out ? out : "");
    free(out);
    /* the CUDA module present, its libraries not: the loader ignoring its cache (/etc/ld.so.cache,
     * where the toolkit's directory is listed) finds only the system's directories */
    if (!module_built("cuda")) {
        printf("cuda module not built: its missing-library case is not run\n");
        free(want);
        return;
    }
#ifdef TR_SANITIZE
    /* started through ld.so, the sanitizer runtime is not first in the library list and refuses */
    printf("the missing-library case is left to the normal build under the sanitizers\n");
    free(want);
    return;
#endif
    const char *ldso = "/lib64/ld-linux-x86-64.so.2";
    char args[1024];
    snprintf(args, sizeof args, "%s --inhibit-cache %s info", ldso, TR_TRANSIT_BIN);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "TRANSIT_NO_BLAS_TUNE=1 %s >/tmp/tr_modules_info.%d 2>&1", args, (int)getpid());
    int st = system(cmd);
    snprintf(cmd, sizeof cmd, "/tmp/tr_modules_info.%d", (int)getpid());
    out = tr_read_file(cmd, NULL);
    unlink(cmd);
    if (out && strstr(out, "cuda: unavailable: cannot load its module: libcu")) {
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "info without the CUDA libraries exited %d", st);
        snprintf(cmd, sizeof cmd, "TRANSIT_NO_BLAS_TUNE=1 %s --inhibit-cache %s run -n 12 --temp 0 -p Once 2>/dev/null",
                 ldso, TR_TRANSIT_BIN);
        FILE *p = popen(cmd, "r");
        char text[4096] = "";
        size_t n = p ? fread(text, 1, sizeof text - 1, p) : 0;
        text[n] = '\0';
        CHECK(p && pclose(p) == 0 && want && !strcmp(text, want), "a CPU run without the CUDA libraries: '%s'", text);
        snprintf(cmd, sizeof cmd, "TRANSIT_NO_BLAS_TUNE=1 %s --inhibit-cache %s run -n 4 --backend cuda 2>&1", ldso,
                 TR_TRANSIT_BIN);
        p = popen(cmd, "r");
        n = p ? fread(text, 1, sizeof text - 1, p) : 0;
        text[n] = '\0';
        CHECK(p && pclose(p) != 0 && strstr(text, "backend 'cuda': cannot load its module: libcu"),
              "--backend cuda without its libraries: '%s'", text);
        const char *line = strstr(out, "cuda: unavailable");
        printf("without the CUDA libraries: %.*s\n", (int)strcspn(line, "\n"), line);
    } else {
        /* the CUDA libraries are in a system directory here: nothing to take away */
        printf("the CUDA libraries are found without the loader's cache here: case not run\n");
    }
    free(out);
    free(want);
}

int main(void)
{
    const char *model = TR_GOLDEN_DIR "/../../models/default";
    test_this_process(model);
    test_command();
    test_without_modules();
    return tr_test_finish("test_modules");
}
