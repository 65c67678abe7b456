/*
 * md_offline.h - offline mode: JSON-lines commands from a file or stdin,
 * one result line per command (docs/architecture.md, `marketd --input`).
 *
 * Threads: md_offline_run runs on the calling thread and starts none.
 */
#ifndef MD_OFFLINE_H
#define MD_OFFLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "md_engine.h"
#include "md_error.h"
#include "md_projector.h"

/* Offline mode's projector transactions, unless projections.max_events says:
 * twice the daemon's (MD_PROJECTOR_MAX_EVENTS), with no Kafka prefetch sharing
 * the memory bound. On the benchmark's 1M commands (offline.batch_max_commands
 * 12000), peak RssAnon 52-54 MiB with it, 60-64.4 with 16384 (the default until
 * issue 17's tenth pass, which crossed the 64 MiB bound in some runs) and
 * 47-48 with 4096; the projector's CPU 5.5 s against 4.8 s at 16384, the
 * writer's and the throughput the same (docs/performance.md). */
#define MD_OFFLINE_PROJ_MAX_EVENTS 8192

typedef struct md_offline_opts {
    const char *input;   /* path, or "-" for stdin */
    const char *results; /* path, or "-" for stdout; NULL = "-" */
    const char *data_dir;
    md_engine_opts_t engine;       /* operator, clock, message limit */
    size_t batch_max;              /* commands per write transaction; 0 = 1000 */
    md_projector_opts_t projector; /* projections.max_events (0: MD_OFFLINE_PROJ_MAX_EVENTS),
                                      sync_ms, priority */
    bool nosync;                   /* benchmarks that say so only */
    bool msgpack;                  /* input is msgpack frames (4-byte big-endian length,
                                 then the message), not JSON lines */
    bool quiet;                    /* no summary line on stderr */
} md_offline_opts_t;

/**
 * @brief Runs the whole input through the engine, batch by batch; each batch's
 * results are written (and flushed) after its transaction committed.
 * Blank lines are skipped and get no result.
 * @returns MD_OK at the end of input; MD_EIO (files), or a store error.
 */
MD_MUST_CHECK
md_err_t md_offline_run(const md_offline_opts_t *o, md_error_t *err);

#endif
