/* test_parity.c: `transit parity` as a user's CI runs it: it passes on the shared models (with and
 * without the transition, whole and chunked) and on a DiffLlama model, and fails, naming the broken node, when a kernel is
 * deliberately broken through the TRANSIT_FAULT debug switch. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "test_util.h"

static int run(const char *env, const char *args, char **out)
{
    char cmd[4096], path[] = "/tmp/transit_parity_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>&1 </dev/null", env, TR_TRANSIT_BIN, args, path);
    int st = system(cmd);
    *out = tr_read_file(path, NULL);
    remove(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const char *env, const char *args_fmt, const char *model_rel, const char *extra, int want_rc,
                   const char *must_contain)
{
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, args_fmt, model_rel[0] == '/' ? model_rel : tr_shared(model_rel), extra);
    int rc = run(env, args, &out);
    CHECK(rc == want_rc, "%s transit %s: exit %d, expected %d\n%s", env, args, rc, want_rc, out ? out : "");
    CHECK(out && strstr(out, must_contain), "%s transit %s: output lacks '%s'\n%s", env, args, must_contain,
          out ? out : "");
    free(out);
}

/* A device backend, where this machine has one (lavapipe and PoCL in CI): parity through the CLI,
 * with the transition cut into chunks, broken kernels caught, and `run` on it. Returns whether the
 * backend is here. */
static int device_cases(const char *be, const char *const *models, const char *chunked, const char *diff)
{
    tr_backend *b = NULL;
    if (tr_backend_create(be, NULL, &b) != TR_OK) {
        printf("test_parity: no %s device here (%s): its cases are not run\n", be, tr_last_error());
        return 0;
    }
    tr_backend_free(b);
    char fmt[512], row[32];
    snprintf(row, sizeof row, "| %-8s |", be);
    snprintf(fmt, sizeof fmt, "parity -m %%s -p \"Once upon a time\" --backends cpu,%s -n 64 %%s", be);
    expect("", fmt, models[0], "", 0, row);
    snprintf(fmt, sizeof fmt, "parity -m %%s %%s --backends %s -n 8 --transition", be);
    expect("", fmt, models[1], chunked, 0, "| ok |");
    snprintf(fmt, sizeof fmt, "parity -m %%s -p \"I dreamed\" --backends %s -n 8 %%s", be);
    expect("TRANSIT_FAULT=matmul", fmt, models[2], "", 1, "FAIL");
    snprintf(fmt, sizeof fmt, "parity -m %%s -p \"Once upon a time\" --backends cpu,%s -n 32 %%s", be);
    expect("", fmt, diff, "", 0, row);
    snprintf(fmt, sizeof fmt, "parity -m %%s -p \"Once upon a time\" --backends %s -n 8 %%s", be);
    expect("TRANSIT_FAULT=diff_subtract", fmt, diff, "", 1, "FAIL");
    snprintf(fmt, sizeof fmt, "run -m %%s -p \"Once upon a time\" -n 40 --temp 0 --backend %s %%s", be);
    expect("", fmt, models[1], "", 0, ", there was a little girl named Lily. She loved to play outside in the park.");
    return 1;
}

int main(void)
{
    const char *models[] = {"models/stories260K/stories260K.gguf", "models/stories260K/hf", "models/aidreams260K/hf"};
    char ids[1024];
    snprintf(ids, sizeof ids, "--ids %s", tr_golden("transition/stories260K.n401.ids"));
    for (int i = 0; i < 3; i++) {
        expect("", "parity -m %s -p \"Once upon a time\" --backends cpu -n 64 %s", models[i], "", 0, "64 / 64");
        expect("", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 %s", models[i], "-b 2", 0, "| ok |");
    }
    /* the transition: a 401-token prompt, whole and cut through its blocks */
    expect("", "parity -m %s %s --backends cpu -n 8 --transition", models[1], ids, 0, "| ok |");
    char chunked[1200];
    snprintf(chunked, sizeof chunked, "%s -b 37", ids);
    expect("", "parity -m %s %s --backends cpu -n 8 --transition", models[1], chunked, 0, "| ok |");
    /* broken kernels are caught, and --ops points at the first broken node */
    expect("TRANSIT_FAULT=attention", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 --ops %s", models[0],
           "", 1, "attn.0                 |  ");
    expect("TRANSIT_FAULT=matmul", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 %s", models[2], "", 1,
           "FAIL");
    expect("TRANSIT_FAULT=rms_norm", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 %s", models[1], "", 1,
           "FAIL");
    /* differential attention (DiffLlama): parity holds, and a broken subtraction is caught */
    char diff[1024]; /* tr_golden's buffer is reused by later calls */
    snprintf(diff, sizeof diff, "%s", tr_golden("diffllama/models/d16_gqa4_gelu"));
    expect("", "parity -m %s -p \"Once upon a time\" --backends cpu -n 32 %s", diff, "", 0, "32 / 32");
    expect("", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 %s", diff, "-b 3", 0, "| ok |");
    expect("TRANSIT_FAULT=diff_subtract", "parity -m %s -p \"Once upon a time\" --backends cpu -n 8 --ops %s", diff,
           "", 1, "attn.0 ");
    device_cases("vulkan", models, chunked, diff);
    if (device_cases("opencl", models, chunked, diff)) {
        /* OpenCL's devices by number (transit info lists them) */
        expect("", "run -m %s -p \"Once upon a time\" -n 40 --temp 0 --backend opencl --device 0 %s", models[1], "", 0,
               ", there was a little girl named Lily. She loved to play outside in the park.");
        expect("", "run -m %s -p hi -n 2 --backend opencl --device 63 %s", models[1], "", 1, "opencl: device 63 requested");
    }
    /* a backend named explicitly must be usable */
    expect("", "parity -m %s -p hi --backends cpu,nosuch -n 2 %s", models[0], "", 1, "unavailable");
    return tr_test_finish("test_parity");
}
