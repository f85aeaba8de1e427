/* matmul.cu: MATMUL for many tokens (prefill) through cuBLAS.
 *
 * The IR computes out[t][n] = sum_k x[t][k] W[n][k] with row-major x {K, T}, W {K, N}, out {N, T}.
 * Seen column-major, as cuBLAS does, that is out (N x T, ld N) = W^T (W: K x N, ld K) * x (K x T,
 * ld K): one GEMM with op(A) = T, op(B) = N.
 *   f16 / bf16 weights: x is converted to the weight's type (trc_convert, into the backend's
 *     workspace) and cublasGemmEx runs on the tensor cores with f32 accumulation and f32 output.
 *   f32 weights: cublasSgemm in the handle's default math mode, which never uses TF32 (the f32
 *     parity bound of design §6 leaves no room for TF32's 10-bit mantissa).
 *   quantized weights: x converted to f16, W dequantized to f16 in panels of rows (quant.cu; a whole
 *     7B output matrix would be 260 MB), one tensor-core GEMM per panel into its columns of out. */
#include "common.cuh"

extern "C" cublasStatus_t trc_gemm_product(const trc_gemm_args *a, cublasHandle_t h, cudaStream_t s)
{
    const float one = 1.0f, zero = 0.0f;
    const int N = (int)a->N, T = (int)a->T, K = (int)a->K;
    cublasStatus_t st = cublasSetStream(h, s);
    if (st != CUBLAS_STATUS_SUCCESS)
        return st;
    if (a->dtype == TRC_F32)
        return cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, (const float *)a->w, K, a->x, K, &zero, a->out,
                           N);
    cudaDataType_t type = a->dtype == TRC_F16 ? CUDA_R_16F : CUDA_R_16BF;
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, a->w, type, K, a->xconv, type, K, &zero, a->out,
                        CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

static cublasStatus_t gemm_quant(const trc_gemm_args *a, cublasHandle_t h, cudaStream_t s, cudaError_t *launch)
{
    const float one = 1.0f, zero = 0.0f;
    *launch = trc_convert(a->x, a->xconv, TRC_F16, a->K * a->T, s);
    cublasStatus_t st = *launch == cudaSuccess ? cublasSetStream(h, s) : CUBLAS_STATUS_EXECUTION_FAILED;
    for (int64_t n0 = 0; n0 < a->N && st == CUBLAS_STATUS_SUCCESS; n0 += a->panel_rows) {
        int64_t rows = a->N - n0 < a->panel_rows ? a->N - n0 : a->panel_rows;
        *launch = trc_dequantize_f16(a->w, a->dtype, a->K, n0, rows, a->wconv, s);
        if (*launch != cudaSuccess)
            return CUBLAS_STATUS_EXECUTION_FAILED;
        st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)a->T, (int)a->K, &one, a->wconv, CUDA_R_16F,
                          (int)a->K, a->xconv, CUDA_R_16F, (int)a->K, &zero, a->out + n0, CUDA_R_32F, (int)a->N,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    return st;
}

extern "C" cublasStatus_t trc_gemm(const trc_gemm_args *a, cublasHandle_t h, cudaStream_t s, cudaError_t *launch)
{
    *launch = cudaSuccess;
    if (a->dtype >= TRC_Q8_0)
        return gemm_quant(a, h, s, launch);
    if (a->dtype != TRC_F32) {
        *launch = trc_convert(a->x, a->xconv, a->dtype, a->K * a->T, s);
        if (*launch != cudaSuccess)
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return trc_gemm_product(a, h, s);
}
