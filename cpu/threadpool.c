/* threadpool.c: see threadpool.h. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct tr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the current job */
    tr_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;
    atomic_int busy;       /* workers still inside the current job */
    atomic_uint generation; /* bumped for each job */
    int stop;
};

typedef struct {
    tr_pool *pool;
    int index;
} worker_arg;

static void work(tr_pool *p, int thread)
{
    for (;;) {
        int i = atomic_fetch_add(&p->next_task, 1);
        if (i >= p->n_tasks)
            break;
        p->fn(p->arg, i, thread);
    }
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    tr_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* spin a little before sleeping: consecutive decode kernels arrive microseconds apart */
        int spins = 0;
        while (atomic_load(&p->generation) == seen && spins < 20000)
            spins++;
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->generation) == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        int stop = p->stop;
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return NULL;
        work(p, index);
        if (atomic_fetch_sub(&p->busy, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

tr_pool *tr_pool_create(int n_threads)
{
    tr_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < p->n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, (wa->pool = p, wa->index = i, wa)) != 0) {
            free(wa);
            p->n_threads = i; /* run with the threads we got */
            break;
        }
    }
    return p;
}

void tr_pool_free(tr_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int tr_pool_size(const tr_pool *p) { return p->n_threads; }

void tr_pool_run(tr_pool *p, int n_tasks, tr_task_fn fn, void *arg)
{
    if (p->n_threads == 1 || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; i++)
            fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->busy, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    work(p, 0);
    if (atomic_load(&p->busy) > 0) {
        int spins = 0;
        while (atomic_load(&p->busy) > 0 && spins < 100000)
            spins++;
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->busy) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
