/*
 * test_proj_marker.c - lazy sync of the projections' own environment
 * (md_proj.h, "Lazy sync"): the marker of un-synced commits is written before
 * the first commit after a flush and removed by the flush; at open, a marker
 * of this boot keeps the environment (caught up from its watermark), one of
 * another boot discards it and rebuilds it from the log (read-only: refused).
 * The boot id comes from MARKETD_TEST_BOOT_ID here. The projector thread runs
 * at projections.priority.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "md_projector.h"
#include "proj_fixture.h"

/* The demo day, a third at a time. */
#define PARTS 3
#define MAX_LINES 4096

typedef struct mk {
    proj_fx_t *f;
    char marker[4200];
    char *lines[MAX_LINES]; /* the demo day's commands */
    size_t n, ran;          /* how many; how many were run so far */
} mk_t;

/* Runs the next third of the demo day into the log (one batch). */
static void run_part(mk_t *m)
{
    size_t k = m->n / PARTS;
    assert_true(m->ran + k <= m->n);
    assert_int_equal(proj_fx_run(m->f, (const char *const *)m->lines + m->ran, k), MD_OK);
    m->ran += k;
}

static int mk_setup(void **state)
{
    mk_t *m = calloc(1, sizeof *m);
    m->f = proj_fx_new(false);
    snprintf(m->marker, sizeof m->marker, "%s/proj/unsynced", m->f->dir);
    setenv("MARKETD_TEST_BOOT_ID", "boot-a", 1);
    m->n = proj_fx_demo_lines(m->lines, MAX_LINES);
    assert_true(m->n >= PARTS * 3);
    *state = m;
    return 0;
}

static int mk_teardown(void **state)
{
    mk_t *m = *state;
    proj_fx_free(m->f);
    for (size_t i = 0; i < m->n; i++)
        free(m->lines[i]);
    free(m);
    unsetenv("MARKETD_TEST_BOOT_ID");
    return 0;
}

/* Opens <dir>/proj writable, the log being synced (so lazy sync applies). */
static void open_proj(mk_t *m)
{
    md_store_opts_t so = {.nosync = false};
    md_error_t err = {0};
    assert_int_equal(md_proj_open_dir(m->f->store, m->f->dir, &so, &m->f->proj, &err), MD_OK);
    assert_int_equal(md_proj_lazy_sync(m->f->proj, &err), MD_OK);
}

/* Runs the next part of the demo day into the log and applies it; returns
 * the watermark (the log's head). */
static uint64_t run_and_advance(mk_t *m)
{
    uint64_t seq = 0, head = 0;
    md_error_t err = {0};
    run_part(m);
    assert_int_equal(md_proj_advance(m->f->proj, 0, &seq, &head, NULL, &err), MD_OK);
    assert_int_equal(seq, head);
    return seq;
}

/* The marker's content ("" when it is absent). */
static const char *marker_text(const mk_t *m)
{
    static char buf[128];
    FILE *fp = fopen(m->marker, "r");
    buf[0] = '\0';
    if (fp) {
        if (fgets(buf, sizeof buf, fp) == NULL)
            buf[0] = '\0';
        fclose(fp);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* A commit writes the marker (this boot's id); a flush removes it; a step
 * without anything to apply writes none. */
static void test_marker_written_then_flushed(void **state)
{
    mk_t *m = *state;
    md_error_t err = {0};
    uint64_t seq = 0;
    open_proj(m);
    assert_false(md_proj_unsynced(m->f->proj));
    assert_int_not_equal(access(m->marker, F_OK), 0);
    run_and_advance(m);
    assert_true(md_proj_unsynced(m->f->proj));
    assert_string_equal(marker_text(m), "boot-a");
    assert_int_equal(md_proj_flush(m->f->proj, &err), MD_OK);
    assert_false(md_proj_unsynced(m->f->proj));
    assert_int_not_equal(access(m->marker, F_OK), 0);
    assert_int_equal(md_proj_advance(m->f->proj, 0, &seq, NULL, NULL, &err), MD_OK);
    assert_int_not_equal(access(m->marker, F_OK), 0); /* nothing committed */
    run_and_advance(m);
    assert_string_equal(marker_text(m), "boot-a");
    assert_int_equal(md_proj_flush(m->f->proj, &err), MD_OK);
    assert_int_not_equal(access(m->marker, F_OK), 0);
    assert_int_equal(proj_fx_verify(m->f, NULL), MD_OK);
}

/* The process dies with un-synced commits (the handle freed without a
 * flush) and the log moves on; reopened in the same boot, the environment is
 * kept: caught up from its watermark, equal to a rebuild, still marked until
 * the next flush. */
static void test_marker_same_boot_kept(void **state)
{
    mk_t *m = *state;
    md_error_t err = {0};
    uint64_t from = 0;
    open_proj(m);
    uint64_t w = run_and_advance(m);
    md_proj_free(m->f->proj);
    m->f->proj = NULL;
    run_part(m);
    open_proj(m);
    uint64_t to = md_proj_caught_up(m->f->proj, &from);
    assert_int_equal(from, w); /* kept */
    assert_true(to > w);
    assert_true(md_proj_unsynced(m->f->proj));
    assert_string_equal(marker_text(m), "boot-a");
    assert_int_equal(proj_fx_verify(m->f, NULL), MD_OK);
    assert_int_equal(md_proj_flush(m->f->proj, &err), MD_OK);
    assert_int_not_equal(access(m->marker, F_OK), 0);
}

/* The machine went down with un-synced commits (a marker of another boot):
 * a read-only open refuses the projections, saying what to do; a writable
 * open discards them and rebuilds them from the log (equal to a rebuild),
 * marked with this boot's id until the flush. */
static void test_marker_foreign_boot_rebuilt(void **state)
{
    mk_t *m = *state;
    md_store_opts_t ro = {.read_only = true};
    md_proj_t *p = NULL;
    md_error_t err = {0};
    uint64_t from = 1;
    open_proj(m);
    run_and_advance(m);
    md_proj_free(m->f->proj);
    m->f->proj = NULL;
    run_part(m);
    setenv("MARKETD_TEST_BOOT_ID", "boot-b", 1);
    assert_int_equal(md_proj_open_dir(m->f->store, m->f->dir, &ro, &p, &err), MD_ECORRUPT);
    assert_null(p);
    assert_non_null(strstr(err.msg, "marketctl rebuild"));
    assert_string_equal(marker_text(m), "boot-a"); /* a reader changes nothing */
    open_proj(m);
    uint64_t to = md_proj_caught_up(m->f->proj, &from);
    assert_int_equal(from, 0); /* rebuilt from the first event */
    assert_true(to > 0);
    assert_true(md_proj_unsynced(m->f->proj));
    assert_string_equal(marker_text(m), "boot-b");
    assert_int_equal(proj_fx_verify(m->f, NULL), MD_OK);
    assert_int_equal(md_proj_flush(m->f->proj, &err), MD_OK);
    assert_int_not_equal(access(m->marker, F_OK), 0);
    md_proj_free(m->f->proj); /* flushed: a later boot keeps them */
    m->f->proj = NULL;
    setenv("MARKETD_TEST_BOOT_ID", "boot-c", 1);
    open_proj(m);
    assert_int_equal(md_proj_caught_up(m->f->proj, &from), 0); /* up to date, kept */
    assert_false(md_proj_unsynced(m->f->proj));
}

/* An empty marker (its write failed on a full disk, before any un-synced
 * commit) is no marker: a reader opens the projections, a writer keeps them
 * and removes it (test_faults.sh A: marketctl stats refused them). */
static void test_marker_empty_is_none(void **state)
{
    mk_t *m = *state;
    md_store_opts_t ro = {.read_only = true};
    md_proj_t *p = NULL;
    md_error_t err = {0};
    uint64_t from = 1;
    open_proj(m);
    run_and_advance(m);
    assert_int_equal(md_proj_flush(m->f->proj, &err), MD_OK);
    md_proj_free(m->f->proj);
    m->f->proj = NULL;
    FILE *fp = fopen(m->marker, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(md_proj_open_dir(m->f->store, m->f->dir, &ro, &p, &err), MD_OK);
    md_proj_free(p);
    open_proj(m);
    assert_int_equal(md_proj_caught_up(m->f->proj, &from), 0); /* kept, not rebuilt */
    assert_int_not_equal(access(m->marker, F_OK), 0);
}

/* An environment opened nosync (the log is nosync too) is left as it is:
 * nothing synced, no marker. */
static void test_marker_none_when_nosync(void **state)
{
    mk_t *m = *state;
    md_store_opts_t so = {.nosync = true};
    md_error_t err = {0};
    assert_int_equal(md_proj_open_dir(m->f->store, m->f->dir, &so, &m->f->proj, &err), MD_OK);
    assert_int_equal(md_proj_lazy_sync(m->f->proj, &err), MD_OK);
    run_and_advance(m);
    assert_false(md_proj_unsynced(m->f->proj));
    assert_int_not_equal(access(m->marker, F_OK), 0);
}

/* The projector: its commits are marked; a clean stop flushes them; with a
 * short sync_ms it flushes on its own while running. */
static void test_projector_flushes(void **state)
{
    mk_t *m = *state;
    md_projector_t *pr = NULL;
    md_error_t err = {0};
    uint64_t head = 0;
    open_proj(m);
    assert_int_equal(
        md_projector_start(m->f->proj, &(md_projector_opts_t){.sync_ms = 3600000}, &pr, &err),
        MD_OK);
    run_part(m);
    head = proj_fx_head(m->f);
    assert_int_equal(md_projector_wait(pr, head, 10000, &err), MD_OK);
    assert_string_equal(marker_text(m), "boot-a"); /* an hour from its flush */
    md_projector_free(pr);
    assert_int_not_equal(access(m->marker, F_OK), 0); /* the clean stop flushed */
    assert_int_equal(
        md_projector_start(m->f->proj, &(md_projector_opts_t){.sync_ms = 1}, &pr, &err), MD_OK);
    run_part(m);
    assert_true(proj_fx_head(m->f) > head);
    assert_int_equal(md_projector_wait(pr, proj_fx_head(m->f), 10000, &err), MD_OK); /* marked */
    for (int i = 0; i < 500 && access(m->marker, F_OK) == 0; i++)
        usleep(10000);
    assert_int_not_equal(access(m->marker, F_OK), 0); /* flushed while running */
    md_projector_free(pr);
    assert_int_equal(proj_fx_verify(m->f, NULL), MD_OK);
}

/* Field @p field (1-based; 3 is the state, after the name) of the /proc stat
 * line in @p buf, or -100 when it has none. */
static long stat_field(const char *buf, int field)
{
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (p == NULL)
        return -100;
    p += 2; /* field 3 */
    for (int f = 3; f < field && p != NULL; f++)
        if ((p = strchr(p, ' ')) != NULL)
            p++;
    return p ? strtol(p, NULL, 10) : -100;
}

/* Field @p field of the calling thread's /proc stat. */
static long own_stat(int field)
{
    char buf[512];
    FILE *fp = fopen("/proc/thread-self/stat", "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof buf, fp));
    fclose(fp);
    return stat_field(buf, field);
}

/* Field @p field of the /proc stat of this process's thread named @p comm,
 * or -100 when none is. */
static long thread_stat(const char *comm, int field)
{
    char path[300], buf[512];
    long value = -100;
    DIR *dir = opendir("/proc/self/task");
    assert_non_null(dir);
    struct dirent *de;
    while (value == -100 && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue; /* a thread that has just ended */
        bool got = fgets(buf, sizeof buf, fp) != NULL;
        fclose(fp);
        const char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!got || open == NULL || close == NULL || (size_t)(close - open - 1) != strlen(comm) ||
            strncmp(open + 1, comm, strlen(comm)) != 0)
            continue;
        value = stat_field(buf, field);
        assert_true(value != -100);
    }
    closedir(dir);
    return value;
}

#define STAT_NICE 19
#define STAT_POLICY 41

/* thread_stat(@p comm, @p field) once it is @p want, or after 2 s: a joined
 * thread may still be listed for a moment after pthread_join returned. */
static long wait_thread_stat(const char *comm, int field, long want)
{
    long got = thread_stat(comm, field);
    for (int i = 0; i < 200 && got != want; i++) {
        usleep(10000);
        got = thread_stat(comm, field);
    }
    return got;
}

/* Starts a projector at @p prio over the next part of the day, checks the
 * projector thread's nice value and policy, stops it. */
static void check_priority(mk_t *m, md_priority_t prio, long nice, long policy)
{
    md_projector_t *pr = NULL;
    md_error_t err = {0};
    assert_int_equal(
        md_projector_start(m->f->proj, &(md_projector_opts_t){.priority = prio}, &pr, &err), MD_OK);
    run_part(m);
    assert_int_equal(md_projector_wait(pr, proj_fx_head(m->f), 10000, &err),
                     MD_OK); /* it stepped */
    long got_nice = wait_thread_stat("md-projector", STAT_NICE, nice);
    long got_policy = wait_thread_stat("md-projector", STAT_POLICY, policy);
    md_projector_free(pr);
    assert_int_equal(got_nice, nice);
    assert_int_equal(got_policy, policy);
}

/* projections.priority: low is nice 19, idle is SCHED_IDLE (5), normal is the
 * process's; the other threads keep theirs. */
static void test_projector_priority(void **state)
{
    mk_t *m = *state;
    open_proj(m);
    long own = own_stat(STAT_NICE); /* this thread's: under valgrind its name is the tool's */
    assert_true(own >= -20 && own <= 19);
    assert_int_equal(own_stat(STAT_POLICY), 0);
    check_priority(m, MD_PRIORITY_LOW, 19, 0);
    check_priority(m, MD_PRIORITY_IDLE, own, 5);
    check_priority(m, MD_PRIORITY_NORMAL, own, 0);
    assert_int_equal(own_stat(STAT_NICE), own);
    assert_int_equal(own_stat(STAT_POLICY), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_marker_written_then_flushed, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_marker_same_boot_kept, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_marker_foreign_boot_rebuilt, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_marker_none_when_nosync, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_marker_empty_is_none, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_projector_flushes, mk_setup, mk_teardown),
        cmocka_unit_test_setup_teardown(test_projector_priority, mk_setup, mk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
