/* repack.c: Q4_K weights in a layout of the CPU backend's own, for decode.
 *
 * Decode reads every weight once per token, and with Q4_K's own layout the kernels spend more time
 * unpacking a row's nibbles and scales than the memory takes to deliver them (TinyLlama Q4_K_M, 2
 * threads: 6.9 ns of arithmetic per super-block against 5.8 ns of reading). Interleaving 16 rows
 * (qdot.h's q4_K_x16: the rows are the vector lanes) leaves 2.3 ns: the unpacking is paid once per
 * 16 rows, and each sub-block's scale is one multiply for all of them.
 *
 * The copies are made the first time a decode-sized product meets a Q4_K matrix that is a model
 * weight (tr_tensor.is_weight: unchanged while the model lives, so the copy is keyed by its data
 * pointer) with rows in multiples of 16. From then on prefill unpacks the interleaved copy too
 * (kernels_quant_gemm.c), and the file's pages of the matrix are given back (MADV_DONTNEED on the
 * private, read-only mapping: a later reader faults the same bytes in again), so the resident memory
 * stays about the model's size. The copies are listed in verbose logs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "kernels.h"
#include "qdot.h"
#include "quant.h"

#if TR_QGEMM
int tr_repack_eligible(const tr_tensor *w)
{
    return w->is_weight && w->dtype == TR_Q4_K && w->ndim == 2 && w->ne[1] % 16 == 0 && w->data &&
           tr_is_contiguous(w);
}

const void *tr_repacked(const tr_cpu_state *st, const tr_tensor *w)
{
    for (int i = 0; i < st->n_repacked; i++)
        if (st->repacked[i].src == w->data)
            return st->repacked[i].data;
    return NULL;
}

typedef struct {
    const tr_tensor *w;
    q4_K_x16 *out;
    int64_t nsuper;
} repack_job;

/* Rows 16 g .. 16 g + 15: every super-block. */
static void repack_task(void *arg, int g, int thread)
{
    (void)thread;
    repack_job *j = arg;
    for (int64_t i = 0; i < j->nsuper; i++) {
        q4_K_x16 *o = j->out + (size_t)g * (size_t)j->nsuper + (size_t)i;
        for (int r = 0; r < 16; r++) {
            const tr_block_q4_K *b = (const tr_block_q4_K *)tr_at(j->w, 0, 16 * (int64_t)g + r, 0) + i;
            uint8_t sc[8], m[8];
            k_scales_unpack(b->scales, sc, m);
            for (int s = 0; s < 8; s++) {
                o->sc[s][r] = sc[s];
                o->m[s][r] = m[s];
            }
            o->d[r] = b->d;
            o->dmin[r] = b->dmin;
            /* quant.h: sub-blocks 2c and 2c + 1 are the low and high nibbles of q = qs[32 c ..]. Byte
             * (j, r, k) holds levels 8 j + k and 8 j + 4 + k: for j = 8 c + t, levels l = 8 t + k and l + 4
             * of sub-block 2c (low nibbles); for j = 8 c + 4 + t, the same of sub-block 2c + 1 (high). */
            for (int c = 0; c < 4; c++) {
                const uint8_t *q = b->qs + 32 * c;
                for (int t = 0; t < 4; t++)
                    for (int k = 0; k < 4; k++) {
                        int l = 8 * t + k;
                        o->qs[8 * c + t][r][k] = (uint8_t)((q[l] & 0x0F) | q[l + 4] << 4);
                        o->qs[8 * c + 4 + t][r][k] = (uint8_t)((q[l] >> 4) | (q[l + 4] & 0xF0));
                    }
            }
        }
    }
}

int tr_repack(tr_cpu_state *st, const tr_tensor *w)
{
    if (tr_repacked(st, w))
        return 1;
    if (st->n_repacked == st->cap_repacked) {
        int cap = st->cap_repacked ? 2 * st->cap_repacked : 64;
        void *p = realloc(st->repacked, (size_t)cap * sizeof *st->repacked);
        if (!p)
            return 0;
        st->repacked = p;
        st->cap_repacked = cap;
    }
    int64_t nsuper = w->ne[0] / 256, groups = w->ne[1] / 16;
    size_t bytes = (size_t)groups * (size_t)nsuper * sizeof(q4_K_x16);
    q4_K_x16 *out = NULL;
    if (posix_memalign((void **)&out, 64, bytes) != 0)
        return 0;
    repack_job j = {w, out, nsuper};
    tr_pool_run(st->pool, (int)groups, repack_task, &j);
    st->repacked[st->n_repacked].src = w->data;
    st->repacked[st->n_repacked].data = out;
    st->n_repacked++;
    st->repacked_bytes += bytes;
    /* Nothing of this backend reads the file's copy now (prefill unpacks the interleaved one): give
     * its pages back. They are a private, unwritten mapping of the file, so any later reader (get_rows
     * of tied embeddings, another backend) finds the same bytes, faulted in again from the page
     * cache; only the resident memory changes. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w->data + page - 1) / page * page,
              e = ((uintptr_t)w->data + tr_nbytes(w)) / page * page;
    if (e > a)
        madvise((void *)a, e - a, MADV_DONTNEED);
    tr_log("cpu: %s (q4_K %lld x %lld) interleaved 16 rows at a time for decode: %zu bytes, %.1f MB in all",
           w->name, (long long)w->ne[0], (long long)w->ne[1], bytes, (double)st->repacked_bytes / 1e6);
    return 1;
}
#endif

void tr_repack_free(tr_cpu_state *st)
{
    for (int i = 0; i < st->n_repacked; i++)
        free(st->repacked[i].data);
    free(st->repacked);
    st->repacked = NULL;
    st->n_repacked = st->cap_repacked = 0;
    st->repacked_bytes = 0;
}
