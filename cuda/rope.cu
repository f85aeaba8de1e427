/* rope.cu: ROPE in both layouts, for up to two tensors (a layer's q and k) in one launch.
 *
 * One block per token and group of ROPE_HEADS heads (q's heads, then k's), so that a decoding step's
 * single token still spreads over many SMs. The token's angles pos * freq_scale * theta^(-2i/hd) / factors[i] (RoPE
 * scaling: linear, llama3's per-pair divisors) and their cosines and sines are computed once, in
 * double precision with the operations of rope_f32_ref in its order: in float the angle alone would
 * be off by ~pos * 6e-8 radians (2e-3 at 32K positions), far outside design §6's 1e-7 NMSE. The
 * rotation is done in double too and rounded once; its cost is small next to a decode step's matrix
 * products (each block of a token computes the same table: hd/2 sines and cosines).
 * ADJACENT layout rotates (x[2i], x[2i+1]); HALF rotates (x[i], x[i + hd/2]). */
#include "common.cuh"

#define ROPE_THREADS 128
#define ROPE_HEADS 4 /* heads per block */

__global__ __launch_bounds__(ROPE_THREADS) void rope_kernel(const trc_rope_args a)
{
    extern __shared__ double cs[]; /* [hd/2][2]: cos, sin */
    const int64_t t = blockIdx.x, half = a.hd / 2;
    const double p = (double)a.pos[t];
    for (int64_t i = threadIdx.x; i < half; i += ROPE_THREADS) {
        double angle = p * (double)a.freq_scale * pow((double)a.theta, -2.0 * (double)i / (double)a.hd) /
                       (a.factors ? (double)a.factors[i] : 1.0);
        double s, c;
        sincos(angle, &s, &c);
        cs[2 * i] = c;
        cs[2 * i + 1] = s;
    }
    __syncthreads();
    int64_t g = blockIdx.y; /* this block's group of heads: q's groups, then k's */
    for (int n = 0; n < a.n; n++) {
        const int64_t H = a.H[n], groups = (H + ROPE_HEADS - 1) / ROPE_HEADS;
        if (g >= groups) {
            g -= groups;
            continue;
        }
        const int64_t h0 = g * ROPE_HEADS, h_end = h0 + ROPE_HEADS < H ? h0 + ROPE_HEADS : H, total = (h_end - h0) * half;
        const int64_t row = t + (a.x_row0[n] ? (int64_t)*a.x_row0[n] : 0);
        const float *x = a.x[n] + row * H * a.hd;
        float *out = a.out[n] + t * H * a.hd;
        for (int64_t idx = threadIdx.x; idx < total; idx += ROPE_THREADS) {
            int64_t h = h0 + idx / half, i = idx % half;
            int64_t ia = a.layout == 0 ? 2 * i : i, ib = a.layout == 0 ? 2 * i + 1 : i + half;
            double c = cs[2 * i], s = cs[2 * i + 1];
            double x0 = x[h * a.hd + ia], x1 = x[h * a.hd + ib];
            out[h * a.hd + ia] = (float)(x0 * c - x1 * s);
            out[h * a.hd + ib] = (float)(x0 * s + x1 * c);
        }
        break;
    }
}

extern "C" cudaError_t trc_rope(const trc_rope_args *a, cudaStream_t s)
{
    size_t smem = (size_t)(a->hd / 2) * 2 * sizeof(double);
    int64_t groups = 0; /* each tensor's heads in groups of ROPE_HEADS, none spanning the two */
    for (int n = 0; n < a->n; n++)
        groups += (a->H[n] + ROPE_HEADS - 1) / ROPE_HEADS;
    rope_kernel<<<dim3((unsigned)a->T, (unsigned)groups), ROPE_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}
