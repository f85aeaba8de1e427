/* cuemu.cpp: the scheduler of the CPU emulation (cuemu.h), and the CUDA runtime and cuBLAS calls the
 * backend makes, done on the host: memory is malloc, copies are memcpy, every stream is synchronous,
 * stream capture records launches for cudaGraphLaunch to replay. One emulated device ("EMU H100":
 * 132 SMs, 227 KB of shared memory per block). */
#include <time.h>
#include <ucontext.h>

#include "cublas_v2.h"
#include "cuemu.h"

/* ---- coroutine scheduler ---- */

enum { RUNNABLE, AT_BLOCK, AT_WARP, DONE };
struct emu_thread {
    ucontext_t ctx;
    int state;
    uint3 idx;
    size_t smem_used; /* bytes of static shared memory this thread's declarations have claimed */
};

static const size_t STACK = 256 * 1024;
static std::vector<emu_thread> threads;
static std::vector<char *> stacks;
static ucontext_t sched_ctx;
static int cur;
static const std::function<void()> *cur_body;
static std::vector<unsigned char> dyn_smem, static_smem;
static float shfl_slots[32][32];

/* The order in which the threads of a block run between two barriers, and the blocks of a grid run:
 * CUEMU_ORDER=forward (default), reverse or random[:seed]. A race between threads of one barrier
 * interval (one writes what another reads) gives the right answer in one order only, so running the
 * tests in all three shows races that a single order hides; likewise for blocks that depend on each
 * other's writes within a launch. */
enum { ORDER_FORWARD, ORDER_REVERSE, ORDER_RANDOM };
static int order = -1;
static uint64_t order_rng = 0x9e3779b97f4a7c15ULL;
static int order_mode()
{
    if (order < 0) {
        const char *e = getenv("CUEMU_ORDER");
        order = ORDER_FORWARD;
        if (e && !strcmp(e, "reverse"))
            order = ORDER_REVERSE;
        else if (e && !strncmp(e, "random", 6)) {
            order = ORDER_RANDOM;
            if (e[6] == ':')
                order_rng ^= strtoull(e + 7, nullptr, 10) * 0xbf58476d1ce4e5b9ULL;
        } else if (e && strcmp(e, "forward")) {
            fprintf(stderr, "cuemu: CUEMU_ORDER=%s: expected forward, reverse or random[:seed]\n", e);
            abort();
        }
    }
    return order;
}
/* A permutation of 0..n-1 in the chosen order. */
static void permutation(std::vector<int> &p, int n)
{
    p.resize((size_t)n);
    int mode = order_mode();
    for (int i = 0; i < n; i++)
        p[(size_t)i] = mode == ORDER_REVERSE ? n - 1 - i : i;
    if (mode == ORDER_RANDOM)
        for (int i = n - 1; i > 0; i--) {
            order_rng ^= order_rng << 13, order_rng ^= order_rng >> 7, order_rng ^= order_rng << 17;
            std::swap(p[(size_t)i], p[(size_t)(order_rng % (uint64_t)(i + 1))]);
        }
}
dim3 emu_block_idx, emu_block_dim, emu_grid_dim;

uint3 &emu_thread_idx() { return threads[cur].idx; }
void *emu_dyn_smem() { return dyn_smem.data(); }

/* A kernel's `__shared__ T name[N]` (rewritten by run.sh): every thread of the block makes the same
 * declarations in the same order, so the k-th claim of each thread lands on the same bytes. Filled
 * with NaNs before each block, like dynamic shared memory. */
void *emu_static_smem(size_t n)
{
    emu_thread &t = threads[cur];
    size_t at = t.smem_used;
    t.smem_used += (n + 15) & ~(size_t)15;
    if (t.smem_used > static_smem.size()) {
        fprintf(stderr, "cuemu: more than %zu bytes of static shared memory\n", static_smem.size());
        abort();
    }
    return static_smem.data() + at;
}

static void yield_as(int state)
{
    threads[cur].state = state;
    swapcontext(&threads[cur].ctx, &sched_ctx);
}
void emu_syncthreads() { yield_as(AT_BLOCK); }
void emu_syncwarp() { yield_as(AT_WARP); }
float emu_shfl_xor(float v, int o)
{
    int lane = cur & 31, warp = cur >> 5;
    shfl_slots[warp][lane] = v;
    yield_as(AT_WARP);
    float r = shfl_slots[warp][lane ^ o];
    yield_as(AT_WARP);
    return r;
}

static void trampoline()
{
    (*cur_body)();
    threads[cur].state = DONE;
    swapcontext(&threads[cur].ctx, &sched_ctx);
}

static void run_block(int n)
{
    for (int i = 0; i < n; i++) {
        emu_thread &t = threads[i];
        getcontext(&t.ctx);
        t.ctx.uc_stack.ss_sp = stacks[i];
        t.ctx.uc_stack.ss_size = STACK;
        t.ctx.uc_link = nullptr;
        makecontext(&t.ctx, trampoline, 0);
        t.state = RUNNABLE;
        t.smem_used = 0;
        t.idx = make_uint3((unsigned)(i % emu_block_dim.x), (unsigned)(i / emu_block_dim.x % emu_block_dim.y),
                           (unsigned)(i / (emu_block_dim.x * emu_block_dim.y)));
    }
    std::vector<int> perm;
    for (;;) {
        permutation(perm, n);
        for (int i : perm)
            if (threads[i].state == RUNNABLE) {
                cur = i;
                swapcontext(&sched_ctx, &threads[i].ctx);
            }
        bool released = false, all_done = true;
        for (int w = 0; w * 32 < n; w++) { /* a warp whose live lanes all wait at a warp barrier */
            int live = 0, waiting = 0;
            for (int i = w * 32; i < n && i < w * 32 + 32; i++) {
                live += threads[i].state != DONE;
                waiting += threads[i].state == AT_WARP;
            }
            if (live && waiting == live) {
                for (int i = w * 32; i < n && i < w * 32 + 32; i++)
                    threads[i].state = RUNNABLE;
                released = true;
            }
        }
        if (released)
            continue;
        int live = 0, waiting = 0;
        for (int i = 0; i < n; i++) {
            live += threads[i].state != DONE;
            waiting += threads[i].state == AT_BLOCK;
            all_done = all_done && threads[i].state == DONE;
        }
        if (all_done)
            return;
        if (waiting == live) {
            for (int i = 0; i < n; i++)
                if (threads[i].state == AT_BLOCK)
                    threads[i].state = RUNNABLE;
            continue;
        }
        fprintf(stderr, "cuemu: deadlock in block (%u,%u,%u): divergent barrier or shuffle\n", emu_block_idx.x,
                emu_block_idx.y, emu_block_idx.z);
        abort();
    }
}

void emu_run_grid(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body)
{
    int n = (int)(block.x * block.y * block.z);
    if (n > 1024 || smem > 232448) {
        fprintf(stderr, "cuemu: launch of %d threads with %zu bytes of shared memory\n", n, smem);
        abort();
    }
    while ((int)stacks.size() < n)
        stacks.push_back((char *)malloc(STACK));
    if ((int)threads.size() < n)
        threads.resize((size_t)n);
    emu_grid_dim = grid;
    emu_block_dim = block;
    cur_body = &body;
    dyn_smem.assign(smem + 16, 0xff); /* NaNs */
    static_smem.assign(48 << 10, 0xff);
    std::vector<int> blocks;
    permutation(blocks, (int)(grid.x * grid.y * grid.z));
    for (int b : blocks) {
        emu_block_idx = dim3((unsigned)b % grid.x, (unsigned)b / grid.x % grid.y, (unsigned)b / (grid.x * grid.y));
        std::fill(dyn_smem.begin(), dyn_smem.end(), 0xff);
        std::fill(static_smem.begin(), static_smem.end(), 0xff);
        run_block(n);
    }
}

/* ---- stream capture ---- */

static bool capturing;
static std::vector<std::function<void()>> *recording;
bool emu_capturing() { return capturing; }
void emu_record(std::function<void()> f) { recording->push_back(std::move(f)); }

/* ---- the runtime ---- */

extern "C" {

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = getenv("CUEMU_NO_DEVICE") ? 0 : 1;
    return *n ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "EMU H100 (CPU emulation)");
    p->totalGlobalMem = (size_t)4 << 30; /* an H100 has 80: less keeps bandwidth()'s copies short here */
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->l2CacheSize = 50 << 20;
    p->sharedMemPerBlockOptin = 232448;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = aligned_alloc(256, (n + 255) / 256 * 256);
    if (*p)
        memset(*p, 0xcd, n); /* garbage, as device memory is */
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned)
{
    *p = malloc(n);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t)
{
    if (capturing) {
        fprintf(stderr, "cuemu: memcpy during capture\n");
        abort();
    }
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned)
{
    *s = (cudaStream_t)malloc(1);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned)
{
    *e = (cudaEvent_t) new double(0);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete (double *)e;
    return cudaSuccess;
}
/* Streams are synchronous, so an event's time is the wall-clock time it is recorded at. */
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = (cudaEvent_t) new double(0);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    *(double *)e = (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    *ms = (float)((*(double *)b - *(double *)a) * 1e3);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t)
{
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void *, cudaFuncAttribute, int) { return cudaSuccess; }

static long n_graph_launches;
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode)
{
    capturing = true;
    recording = new std::vector<std::function<void()>>();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g)
{
    capturing = false;
    *g = (cudaGraph_t)recording;
    recording = nullptr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long)
{
    *e = (cudaGraphExec_t) new std::vector<std::function<void()>>(*(std::vector<std::function<void()>> *)g);
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    delete (std::vector<std::function<void()>> *)g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e)
{
    delete (std::vector<std::function<void()>> *)e;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t)
{
    n_graph_launches++;
    if (getenv("CUEMU_TRACE"))
        fprintf(stderr, "cuemu: graph launch %ld\n", n_graph_launches);
    for (auto &f : *(std::vector<std::function<void()>> *)e)
        f();
    return cudaSuccess;
}

/* ---- cuBLAS: column-major C = alpha op(A) op(B) + beta C, f32 accumulation ---- */

struct emu_cublas {
    int unused;
};
cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new emu_cublas();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) { return s ? "emulated cuBLAS error" : "success"; }

static float elem(const void *p, cudaDataType_t t, size_t i)
{
    if (t == CUDA_R_16F)
        return tr_f16_to_f32(((const uint16_t *)p)[i]);
    if (t == CUDA_R_16BF)
        return tr_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                           cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, float beta, float *C,
                           int ldc)
{
    if (capturing) {
        fprintf(stderr, "cuemu: cuBLAS during capture\n");
        abort();
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0;
            for (int l = 0; l < k; l++) {
                float a = elem(A, at, ta == CUBLAS_OP_T ? (size_t)l + (size_t)i * lda : (size_t)i + (size_t)l * lda);
                float b = elem(B, bt, tb == CUBLAS_OP_T ? (size_t)j + (size_t)l * ldb : (size_t)l + (size_t)j * ldb);
                acc += a * b;
            }
            C[i + (size_t)j * ldc] = alpha * acc + (beta != 0 ? beta * C[i + (size_t)j * ldc] : 0.0f);
        }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    return gemm(ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, *beta, C, ldc);
}
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                            cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t, cublasGemmAlgo_t)
{
    if (ct != CUDA_R_32F || at != bt)
        return CUBLAS_STATUS_INVALID_VALUE;
    return gemm(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb, *(const float *)beta, (float *)C, ldc);
}

} /* extern "C" */
