/*
 * test_http_tokens.c - the read API's bearer tokens (md_tokens_*): the file
 * format and its errors, roles, and the check (unknown tokens refused, every
 * entry compared whatever matches, the token never in an error message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_http.h"

#define AUDITOR "audit-0123456789abcdef"
#define ANALYST "analyst-0123456789abcdef"
#define BOB "bob-0123456789abcdef"
#define CAROL "carol-0123456789abcdef"

typedef struct fx {
    char *dir;
    char path[512];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = md_test_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/tokens", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    remove(f->path);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const fx_t *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(f->path, 0600), 0);
}

/* Loads @p text; returns the code and leaves the message in @p err. */
static md_err_t load_text(const fx_t *f, const char *text, md_tokens_t **t, md_error_t *err)
{
    write_file(f, text);
    *t = NULL;
    return md_tokens_load(f->path, t, err);
}

static const char good_file[] =
    "# read API tokens\n"
    "\n" AUDITOR " auditor\n"
    "   " ANALYST "\tanalyst   \n" BOB " member:bob\r\n"
    "# a comment line with two words\n" CAROL " member:carol"; /* no final newline */

static void test_http_tokens_roles(void **state)
{
    fx_t *f = *state;
    md_tokens_t *t;
    md_error_t err = {0};
    md_principal_t who;
    assert_int_equal(load_text(f, good_file, &t, &err), MD_OK);
    assert_true(md_tokens_check(t, AUDITOR, &who));
    assert_int_equal(who.role, MD_ROLE_AUDITOR);
    assert_true(md_tokens_check(t, ANALYST, &who));
    assert_int_equal(who.role, MD_ROLE_ANALYST);
    assert_true(md_tokens_check(t, BOB, &who));
    assert_int_equal(who.role, MD_ROLE_MEMBER);
    assert_string_equal(who.member, "bob");
    assert_true(md_tokens_check(t, CAROL, &who));
    assert_int_equal(who.role, MD_ROLE_MEMBER);
    assert_string_equal(who.member, "carol");
    md_tokens_free(t);
    md_tokens_free(NULL);
}

/* Anything but a stored token exactly is unknown, and *who is left alone. */
static void test_http_tokens_unknown_is_false(void **state)
{
    fx_t *f = *state;
    md_tokens_t *t;
    md_error_t err = {0};
    md_principal_t who = {.role = MD_ROLE_NONE, .member = "untouched"};
    const char *wrong[] = {"",
                           "x",
                           "audit-0123456789abcde",  /* a prefix */
                           AUDITOR "0",              /* an extension */
                           "AUDIT-0123456789ABCDEF", /* another case */
                           " " AUDITOR,              /* white space is part of a token */
                           AUDITOR " ",
                           "auditor", /* the role is not a token */
                           "member:bob",
                           "# read API tokens"};
    assert_int_equal(load_text(f, good_file, &t, &err), MD_OK);
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        assert_false(md_tokens_check(t, wrong[i], &who));
        assert_int_equal(who.role, MD_ROLE_NONE);
        assert_string_equal(who.member, "untouched");
    }
    assert_false(md_tokens_check(t, NULL, &who));
    assert_false(md_tokens_check(NULL, AUDITOR, &who));
    md_tokens_free(t);
}

typedef struct bad_case {
    const char *text;
    int line;
} bad_case_t;

/* Every malformed file is refused, naming the file and the line, and the
 * message never contains a token. */
static void test_http_tokens_file_errors_name_the_line(void **state)
{
    fx_t *f = *state;
    static const bad_case_t bad[] = {
        {"# only a comment\n\n", 0},
        {"", 0},
        {AUDITOR "\n", 1},                   /* no role */
        {"# c\n" AUDITOR " superuser\n", 2}, /* unknown role */
        {AUDITOR " auditor\n"
                 "short-token analyst\n",
         2},                             /* under 16 characters */
        {AUDITOR " auditor extra\n", 1}, /* three fields */
        {AUDITOR " member:\n", 1},       /* no member id */
        {AUDITOR " member:bad id\n", 1}, /* becomes three fields */
        {AUDITOR " member:b@d\n", 1},    /* not a member id */
        {AUDITOR " Auditor\n", 1},       /* roles are lower case */
        {AUDITOR " auditor\n" ANALYST " analyst\n" AUDITOR " analyst\n", 3}, /* twice */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        md_tokens_t *t;
        md_error_t err = {0};
        char where[600];
        assert_int_equal(load_text(f, bad[i].text, &t, &err), MD_ECONFIG);
        assert_null(t);
        assert_non_null(strstr(err.msg, f->path));
        if (bad[i].line) {
            snprintf(where, sizeof where, "%s:%d:", f->path, bad[i].line);
            assert_non_null(strstr(err.msg, where));
        }
        assert_null(strstr(err.msg, "0123456789abcdef"));
        assert_null(strstr(err.msg, "short-token"));
    }
}

/* A line longer than the reader's buffer is an error, not two lines (the
 * second half could otherwise parse as a token of its own). */
static void test_http_tokens_long_line_refused(void **state)
{
    fx_t *f = *state;
    md_tokens_t *t;
    md_error_t err = {0};
    char text[2200];
    memset(text, 'a', 1500);
    snprintf(text + 1500, sizeof text - 1500, " %s analyst\n", BOB);
    assert_int_equal(load_text(f, text, &t, &err), MD_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(err.msg, ":1:"));
    assert_null(strstr(err.msg, "aaaaaaaa"));
}

/* Like ssh with a private key: readable by others is refused, by the group warned. */
static void test_http_tokens_file_readable_by_others_refused(void **state)
{
    fx_t *f = *state;
    md_tokens_t *t = NULL;
    md_error_t err = {0};
    write_file(f, good_file);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(md_tokens_load(f->path, &t, &err), MD_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "0644"));
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_int_equal(chmod(f->path, 0604), 0);
    assert_int_equal(md_tokens_load(f->path, &t, &err), MD_ECONFIG);
    assert_int_equal(chmod(f->path, 0640), 0); /* group: loaded, with a warning */
    assert_int_equal(md_tokens_load(f->path, &t, &err), MD_OK);
    md_tokens_free(t);
}

static void test_http_tokens_missing_file(void **state)
{
    fx_t *f = *state;
    md_tokens_t *t = NULL;
    md_error_t err = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/absent", f->dir);
    assert_int_equal(md_tokens_load(path, &t, &err), MD_EIO);
    assert_null(t);
    assert_non_null(strstr(err.msg, "absent"));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The fastest of several rounds of @p n checks of @p token. */
static double fastest(const md_tokens_t *t, const char *token, int n)
{
    double best = 1e9;
    md_principal_t who;
    for (int round = 0; round < 15; round++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            (void)md_tokens_check(t, token, &who);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/*
 * Many tokens: each resolves to its own principal, and a check costs the same
 * whether the token is the first entry, the last or unknown (every entry is
 * compared: an early exit would make the first entry ~20 times faster than the
 * last with 4000 entries). Timing is compared only coarsely (a factor of 3,
 * fastest of 15 rounds), so load on the machine does not make it flaky.
 */
static void test_http_tokens_every_entry_compared(void **state)
{
    fx_t *f = *state;
    enum { N = 4000 };
    md_tokens_t *t;
    md_error_t err = {0};
    md_principal_t who;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < N; i++)
        fprintf(fp, "token-%08d-padding member:m%d\n", i, i);
    fclose(fp);
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(md_tokens_load(f->path, &t, &err), MD_OK);
    for (int i = 0; i < N; i += 397) {
        char tok[64], id[16];
        snprintf(tok, sizeof tok, "token-%08d-padding", i);
        snprintf(id, sizeof id, "m%d", i);
        assert_true(md_tokens_check(t, tok, &who));
        assert_int_equal(who.role, MD_ROLE_MEMBER);
        assert_string_equal(who.member, id);
    }
    double first = fastest(t, "token-00000000-padding", 20);
    double last = fastest(t, "token-00003999-padding", 20);
    double unknown = fastest(t, "token-99999999-padding", 20);
    assert_true(first * 3 > last && last * 3 > first);
    assert_true(unknown * 3 > first && first * 3 > unknown);
    md_tokens_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_tokens_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_unknown_is_false, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_file_errors_name_the_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_long_line_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_file_readable_by_others_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_tokens_every_entry_compared, setup, teardown),
    };
    return cmocka_run_group_tests_name("http_tokens", tests, NULL, NULL);
}
