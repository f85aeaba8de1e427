/* common.cl: first in every program. The work-group size WG (the host launches every kernel with
 * CL_WG work-items per group), tensors addressed as (buffer, byte offset) because OpenCL 1.2 kernels
 * take whole buffers, and work-group reductions through local memory.
 *
 * Reductions: every work-item passes one value and gets the group's sum or max; call them in
 * uniform control flow (they hold barriers). A tree in local memory (WG is a power of two). */
#define WG 64

#define CPTR(type, base, off) ((global const type *)((global const uchar *)(base) + (off)))
#define PTR(type, base, off) ((global type *)((global uchar *)(base) + (off)))

float wg_sum(float v, local float *red)
{
    uint lid = get_local_id(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

float wg_max(float v, local float *red)
{
    uint lid = get_local_id(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red[lid] = fmax(red[lid], red[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* 16-bit float weights: f16 through vload_half (core OpenCL, no cl_khr_fp16 needed), bf16 as the
 * high half of a float's bits. row: the first byte of a row; k: the element. */
float ld_f32(global const uchar *row, uint k) { return ((global const float *)row)[k]; }
float ld_f16(global const uchar *row, uint k) { return vload_half(k, (global const half *)row); }
float ld_bf16(global const uchar *row, uint k) { return as_float((uint)((global const ushort *)row)[k] << 16); }

#define DEFINE_FOR_EACH_FLOAT(M) M(f32) M(f16) M(bf16)
