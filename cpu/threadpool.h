/* threadpool.h: a small pool of worker threads for the CPU backend's fast kernels.
 *
 * tr_pool_run(pool, n, fn, arg) runs fn(arg, i, thread) for i = 0..n-1, tasks handed out one at a
 * time from an atomic counter; the calling thread works too (as thread 0) and the call returns when
 * every task is done. Idle workers spin briefly (decode dispatches hundreds of small jobs per
 * token) and then sleep on a condition variable, so they do not compete with OpenBLAS's threads
 * while an sgemm runs. */
#ifndef TR_THREADPOOL_H
#define TR_THREADPOOL_H

typedef struct tr_pool tr_pool;
typedef void (*tr_task_fn)(void *arg, int task, int thread);

tr_pool *tr_pool_create(int n_threads); /* n_threads counts the caller; NULL on failure */
void tr_pool_free(tr_pool *p);
int tr_pool_size(const tr_pool *p);
void tr_pool_run(tr_pool *p, int n_tasks, tr_task_fn fn, void *arg);

#endif
