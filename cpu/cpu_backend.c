/* cpu_backend.c: the CPU backend: host buffers, the memory plan, and per-op kernel dispatch.
 *
 * Two modes: the fast path (default) and reference mode (opt->reference), which runs only the
 * plain kernels of kernels_ref.c; tests and `transit parity` compare the two. Weights stay in the
 * mmapped file (buffer_from_host), so loading costs no copy and no f32 conversion. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "kernel_set.h"
#include "parity.h"

#define SCRATCH_ALIGN 64

typedef struct cpu_backend {
    tr_backend base;
    tr_cpu_state st;
    const tr_cpu_kernel_set *set; /* the fast kernels: the best this CPU runs, or the one asked for */
    int set_forced;               /* TRANSIT_CPU_KERNELS or the options chose it */
    int reference;
    tr_op fault; /* TRANSIT_FAULT (parity.h): this op's fast kernel perturbs its output */
    int fault_diff; /* TRANSIT_FAULT=diff_subtract: the fast DIFF attention adds instead */
    void *arena; /* intermediates of the current graph */
    size_t arena_size;
} cpu_backend;

typedef void (*ref_kernel)(tr_tensor *dst);

static const ref_kernel ref_kernels[TR_OP_COUNT] = {
    [TR_OP_GET_ROWS] = get_rows_ref,    [TR_OP_RMS_NORM] = rms_norm_f32_ref, [TR_OP_ADD] = add_f32_ref,
    [TR_OP_MUL] = mul_f32_ref,          [TR_OP_MATMUL] = matmul_ref,         [TR_OP_ROPE] = rope_f32_ref,
    [TR_OP_GLU] = glu_f32_ref,       [TR_OP_KV_WRITE] = kv_write_f32_ref, [TR_OP_ATTENTION] = attention_f32_ref,
    [TR_OP_COPY] = copy_f32_ref,       [TR_OP_CONCAT] = concat_f32_ref,
};
_Static_assert(TR_OP_COUNT == 13, "a new op needs a CPU reference kernel in ref_kernels");

static void cpu_free(tr_backend *b)
{
    cpu_backend *c = (cpu_backend *)b;
    tr_pool_free(c->st.pool);
    free(c->st.scratch);
    free(c->st.panel);
    c->set->repack_free(&c->st);
    free(c->arena);
    free(c);
}

static void cpu_describe(tr_backend *b, char *buf, size_t cap)
{
    cpu_backend *c = (cpu_backend *)b;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (c->reference)
        snprintf(buf, cap, "cpu-ref: the plain reference kernels, 1 thread (the definition others are held to)");
    else
        snprintf(buf, cap, "cpu: %d threads of %ld cores, %s; kernel set %s (%s), %s", c->st.n_threads, cores,
                 openblas_get_config(), c->set->name, c->set->does,
                 c->set_forced ? "chosen by name" : "the best this CPU runs (TRANSIT_CPU_KERNELS picks another)");
}

static bool cpu_supports_op(tr_backend *b, const tr_tensor *n)
{
    return n->op == TR_OP_VIEW || n->op == TR_OP_NONE || ((unsigned)n->op < TR_OP_COUNT && ref_kernels[n->op]);
}

static tr_status cpu_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out)
{
    tr_buffer *buf = calloc(1, sizeof *buf);
    void *mem = NULL;
    if (!buf || posix_memalign(&mem, SCRATCH_ALIGN, size ? size : 1) != 0) {
        free(buf);
        return tr_fail(TR_ERR_NOMEM, "cpu: cannot allocate %zu bytes", size);
    }
    *buf = (tr_buffer){.backend = b, .host = mem, .size = size, .impl = mem};
    *out = buf;
    return TR_OK;
}

static tr_status cpu_buffer_from_host(tr_backend *b, void *ptr, size_t size, tr_buffer **out)
{
    tr_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return tr_fail(TR_ERR_NOMEM, "cpu: out of memory");
    *buf = (tr_buffer){.backend = b, .host = ptr, .size = size, .borrowed = 1};
    *out = buf;
    return TR_OK;
}

static void cpu_buffer_free(tr_buffer *buf)
{
    if (!buf)
        return;
    if (!buf->borrowed)
        free(buf->impl);
    free(buf);
}

static tr_status cpu_upload(tr_buffer *buf, size_t offset, const void *src, size_t n)
{
    if (offset > buf->size || n > buf->size - offset)
        return tr_fail(TR_ERR_RANGE, "cpu: upload past the end of a buffer");
    memcpy((char *)buf->host + offset, src, n);
    return TR_OK;
}

static tr_status cpu_download(tr_buffer *buf, size_t offset, void *dst, size_t n)
{
    if (offset > buf->size || n > buf->size - offset)
        return tr_fail(TR_ERR_RANGE, "cpu: download past the end of a buffer");
    memcpy(dst, (char *)buf->host + offset, n);
    return TR_OK;
}

int tr_cpu_scratch_reserve(tr_cpu_state *st, size_t n)
{
    if (n <= st->scratch_per_thread)
        return 1;
    float *s = realloc(st->scratch, (size_t)st->n_threads * n * sizeof(float));
    if (!s)
        return 0;
    st->scratch = s;
    st->scratch_per_thread = n;
    return 1;
}

/* Sizes the arena and the per-thread scratch for g, then gives every node its data pointer. */
static tr_status place(cpu_backend *c, tr_graph *g, int keep_all)
{
    size_t need = tr_memplan(g, SCRATCH_ALIGN, keep_all);
    if (need == (size_t)-1)
        return tr_fail(TR_ERR_NOMEM, "cpu: out of memory planning the graph");
    if (need > c->arena_size) {
        free(c->arena);
        c->arena = NULL;
        if (posix_memalign(&c->arena, SCRATCH_ALIGN, need) != 0) {
            c->arena_size = 0;
            return tr_fail(TR_ERR_NOMEM, "cpu: cannot allocate %zu bytes of activations", need);
        }
        c->arena_size = need;
    }
    size_t scratch = 0, panel = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++)
            if (!t->src[s]->data)
                return tr_fail(TR_ERR_INVALID_ARG, "cpu: source '%s' of node '%s' has no memory",
                               t->src[s]->name, t->name);
        t->buffer = NULL; /* host memory: tr_tensor_get reads data, whatever placed the graph before */
        if (t->op == TR_OP_VIEW)
            t->data = (char *)t->src[0]->data + t->p.view_offset;
        else if (t->op == TR_OP_KV_WRITE)
            t->data = t->src[1]->data;
        else
            t->data = (char *)c->arena + t->offset;
        const tr_cpu_kernel_set *k = c->set;
        if (t->op == TR_OP_ATTENTION && k->attention_scratch_floats(t) > scratch)
            scratch = k->attention_scratch_floats(t);
        if (t->op == TR_OP_MATMUL && k->matmul_panel_floats(t) > panel)
            panel = k->matmul_panel_floats(t);
        if (t->op == TR_OP_MATMUL && k->matmul_thread_floats(t, c->st.n_threads) > scratch)
            scratch = k->matmul_thread_floats(t, c->st.n_threads);
        if (k->repack && !c->reference && t->op == TR_OP_MATMUL && t->src[0]->ne[1] < TR_QGEMV_MAX_TOKENS &&
            k->repack_eligible(t->src[1]) && !k->repack(&c->st, t->src[1]))
            return tr_fail(TR_ERR_NOMEM, "cpu: cannot allocate the decode layout of '%s'", t->src[1]->name);
    }
    if (!tr_cpu_scratch_reserve(&c->st, scratch))
        return tr_fail(TR_ERR_NOMEM, "cpu: cannot allocate %zu bytes of per-thread scratch", scratch * sizeof(float));
    if (panel > c->st.panel_floats) {
        float *p = realloc(c->st.panel, panel * sizeof(float));
        if (!p)
            return tr_fail(TR_ERR_NOMEM, "cpu: cannot allocate a weight panel");
        c->st.panel = p;
        c->st.panel_floats = panel;
    }
    return TR_OK;
}

static tr_cpu_kernel fast_kernel_of(const tr_cpu_kernel_set *k, tr_op op)
{
    switch (op) {
    case TR_OP_MATMUL: return k->matmul;
    case TR_OP_ATTENTION: return k->attention;
    case TR_OP_ROPE: return k->rope;
    case TR_OP_GLU: return k->glu;
    case TR_OP_RMS_NORM: return k->rms_norm;
    default: return NULL; /* the reference kernel is fast enough */
    }
}

static tr_status cpu_graph_compute(tr_backend *b, tr_graph *g)
{
    cpu_backend *c = (cpu_backend *)b;
    TR_TRY(place(c, g, g->keep_all));
    tr_op fault = c->reference ? TR_OP_NONE : c->fault;
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (t->op == TR_OP_VIEW)
            continue;
        int broken_diff = !c->reference && c->fault_diff && t->op == TR_OP_ATTENTION && t->p.attn.variant == TR_ATTN_DIFF;
        if (broken_diff) /* y = O_j + lambda O_{j+H/2}: the kernel is right, its input is the fault */
            t->p.attn.diff.lambda = -t->p.attn.diff.lambda;
        tr_cpu_kernel fast = c->reference ? NULL : fast_kernel_of(c->set, t->op);
        if (fast)
            fast(&c->st, t);
        else
            ref_kernels[t->op](t);
        if (broken_diff)
            t->p.attn.diff.lambda = -t->p.attn.diff.lambda;
        if (t->op == fault) /* TRANSIT_FAULT: a deliberately broken kernel, for testing parity */
            ((float *)t->data)[0] += 1.0f;
    }
    return TR_OK;
}

static void cpu_memory(tr_backend *b, size_t *activations, size_t *workspace)
{
    cpu_backend *c = (cpu_backend *)b;
    *activations = c->arena_size;
    *workspace = ((size_t)c->st.n_threads * c->st.scratch_per_thread + c->st.panel_floats) * sizeof(float) +
                 c->st.repacked_bytes; /* weights in the decode layout (cpu/repack.c) */
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Reading the model's own weights, as decode does: every byte once per pass, in chunks of 1 MiB spread
 * over the pool's threads (decode's order within a matrix), 64-byte loads summed so that none is
 * optimised away. The best of 5 passes after a first that faults the pages in: a rate decode, which
 * also reads activations and the KV cache, cannot beat. */
#define READ_CHUNK ((size_t)1 << 20)

typedef struct {
    const void *const *ptr;
    const size_t *len;
    int n;
    size_t *first_chunk; /* [n + 1]: the chunk index each range starts at */
    uint64_t sums[1024];  /* one per thread: keeps the loads alive */
} read_job;

static void read_task(void *arg, int task, int thread)
{
    read_job *j = arg;
    int r = 0;
    while (r + 1 < j->n && j->first_chunk[r + 1] <= (size_t)task)
        r++;
    size_t off = ((size_t)task - j->first_chunk[r]) * READ_CHUNK, len = j->len[r] - off;
    if (len > READ_CHUNK)
        len = READ_CHUNK;
    const unsigned char *p = (const unsigned char *)j->ptr[r] + off;
    uint64_t acc[8] = {0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        for (int k = 0; k < 8; k++) {
            uint64_t v;
            memcpy(&v, p + i + 8 * k, 8);
            acc[k] += v;
        }
    for (; i < len; i++)
        acc[0] += p[i];
    j->sums[thread % 1024] += acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

static double cpu_read_rate(tr_backend *b, const void *const *ptr, const size_t *len, int n)
{
    cpu_backend *c = (cpu_backend *)b;
    size_t *first = malloc((size_t)(n + 1) * sizeof *first), total = 0, chunks = 0;
    if (!first || n < 1) {
        free(first);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        first[i] = chunks;
        chunks += (len[i] + READ_CHUNK - 1) / READ_CHUNK;
        total += len[i];
    }
    first[n] = chunks;
    read_job *j = calloc(1, sizeof *j);
    double best = 0;
    if (j && chunks > 0 && chunks <= (size_t)INT32_MAX) {
        *j = (read_job){.ptr = ptr, .len = len, .n = n, .first_chunk = first};
        for (int pass = 0; pass < 6; pass++) {
            double t0 = now_seconds();
            tr_pool_run(c->st.pool, (int)chunks, read_task, j);
            double dt = now_seconds() - t0;
            if (pass > 0 && dt > 0 && (double)total / dt > best)
                best = (double)total / dt;
        }
    }
    free(j);
    free(first);
    return best;
}

/* Streaming read bandwidth of host memory with the backend's threads, when no model's weights are
 * at hand to read (tr_model_measure_bandwidth prefers cpu_read_rate on them): 256 MiB, far past any
 * cache, read the same way. */
static double cpu_bandwidth(tr_backend *b)
{
    const size_t bytes = (size_t)256 << 20;
    void *data = NULL;
    if (posix_memalign(&data, 64, bytes) != 0)
        return 0;
    memset(data, 0, bytes);
    const void *ptr = data;
    double rate = cpu_read_rate(b, &ptr, &bytes, 1);
    free(data);
    return rate;
}

/* OpenBLAS SGEMM on one (m x k) * (n x k)^T product with the backend's threads, as prefill calls it
 * (kernels_fast.c; 16-bit weights are converted to f32 panels first, so SGEMM is the library rate
 * whatever the weight type): best of 3 after a warm-up, random values. */
static double cpu_gemm_rate(tr_backend *b, tr_dtype type, int m, int n, int k)
{
    (void)b;
    (void)type;
    if (m <= 0 || n <= 0 || k <= 0)
        return 0;
    float *x = malloc((size_t)m * k * sizeof *x), *w = malloc((size_t)n * k * sizeof *w),
          *out = malloc((size_t)m * n * sizeof *out);
    double best = 0;
    if (x && w && out) {
        uint64_t r = 1;
        for (size_t i = 0; i < (size_t)m * k || i < (size_t)n * k; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            float v = (float)((double)(r >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
            if (i < (size_t)m * k)
                x[i] = v;
            if (i < (size_t)n * k)
                w[i] = -v;
        }
        for (int pass = 0; pass < 4; pass++) {
            double t0 = now_seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, out, n);
            double dt = now_seconds() - t0;
            if (pass > 0 && dt > 0 && 2.0 * m * (double)n * k / dt > best)
                best = 2.0 * m * (double)n * k / dt;
        }
    }
    free(x);
    free(w);
    free(out);
    return best;
}

static const tr_backend_iface cpu_iface = {
    .name = "cpu",
    .free = cpu_free,
    .describe = cpu_describe,
    .supports_op = cpu_supports_op,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_from_host = cpu_buffer_from_host,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .graph_compute = cpu_graph_compute,
    .synchronize = NULL,
    .memory = cpu_memory,
    .bandwidth = cpu_bandwidth,
    .read_rate = cpu_read_rate,
    .gemm_rate = cpu_gemm_rate,
};

tr_status tr_cpu_backend_create(const tr_backend_options *opt, tr_backend **out)
{
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "cpu: out of memory");
    const tr_cpu_kernel_set *set;
    int forced;
    tr_status st = tr_cpu_kernel_set_choose(opt ? opt->cpu_kernels : NULL, &set, &forced);
    if (st != TR_OK) {
        free(c);
        return st;
    }
    c->set = set;
    c->set_forced = forced;
    int n = opt && opt->n_threads > 0 ? opt->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    c->st.n_threads = n < 1 ? 1 : n;
    c->st.pool = tr_pool_create(c->st.n_threads);
    if (!c->st.pool) {
        free(c);
        return tr_fail(TR_ERR_NOMEM, "cpu: cannot start %d threads", n);
    }
    c->st.n_threads = tr_pool_size(c->st.pool);
    c->reference = opt && opt->reference;
    tr_fault_read("cpu (fast kernels)", &c->fault, &c->fault_diff);
    /* OpenBLAS runs the prefill sgemm with as many threads as we would; our pool sleeps meanwhile. */
    openblas_set_num_threads(c->st.n_threads);
    const char *better = tr_blas_better_coretype();
    if (better)
        tr_log("cpu: OpenBLAS chose its %s kernels on a CPU that runs %s's: prefill is 5-10x slower than it "
               "could be; start the program with OPENBLAS_CORETYPE=%s",
               openblas_get_corename(), better, better);
    c->base.iface = &cpu_iface;
    c->base.impl = c;
    *out = &c->base;
    return TR_OK;
}
