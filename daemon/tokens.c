/*
 * tokens.c - bearer tokens of the read API, kept as SHA-256 digests and
 * compared in constant time (CRYPTO_memcmp over every entry, whatever matches).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "md_command.h"
#include "md_http.h"
#include "md_log.h"

typedef struct token {
    unsigned char digest[32];
    md_principal_t who;
} token_t;

struct md_tokens {
    token_t *v;
    size_t n;
};

static void digest(const char *s, unsigned char out[32])
{
    unsigned int n = 0;
    if (!EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL)) {
        fprintf(stderr, "marketd: SHA-256 failed\n");
        abort();
    }
}

static bool parse_role(const char *s, md_principal_t *who)
{
    memset(who, 0, sizeof *who);
    if (strcmp(s, "auditor") == 0)
        who->role = MD_ROLE_AUDITOR;
    else if (strcmp(s, "analyst") == 0)
        who->role = MD_ROLE_ANALYST;
    else if (strncmp(s, "member:", 7) == 0 && md_valid_id(s + 7, strlen(s + 7))) {
        who->role = MD_ROLE_MEMBER;
        snprintf(who->member, sizeof who->member, "%s", s + 7);
    } else
        return false;
    return true;
}

/* Parses "TOKEN ROLE"; blank lines and '#' comments give *skip. */
static md_err_t parse_line(char *line, token_t *t, bool *skip)
{
    char *tok = strtok(line, " \t\r\n"), *role = tok ? strtok(NULL, " \t\r\n") : NULL;
    *skip = tok == NULL || tok[0] == '#';
    if (*skip)
        return MD_OK;
    if (role == NULL || strtok(NULL, " \t\r\n") != NULL || strlen(tok) < 16 ||
        !parse_role(role, &t->who))
        return MD_ECONFIG;
    digest(tok, t->digest);
    return MD_OK;
}

/* Is @p d already stored? Load time only, so an early exit is harmless. */
static bool known(const md_tokens_t *t, const unsigned char d[32])
{
    for (size_t i = 0; i < t->n; i++)
        if (memcmp(t->v[i].digest, d, 32) == 0)
            return true;
    return false;
}

/*
 * Reads the file line by line. A malformed line, a line too long to read
 * whole, a token given twice (which role would win?) and a file without any
 * token are configuration errors naming the file and line, never the token.
 */
/*
 * The file holds secrets: like ssh with a private key, a file that others may
 * read or write is refused, and one the group may access is loaded with a
 * warning. Checked on the opened file, so the file read is the file checked.
 */
static md_err_t check_mode(FILE *f, const char *path, md_error_t *err)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return md_error_set(err, MD_EIO, "stat tokens '%s': %s", path, strerror(errno));
    unsigned mode = (unsigned)st.st_mode & 0777;
    if (mode & 007)
        return md_error_set(err, MD_ECONFIG,
                            "tokens file '%s' is accessible by others (mode %04o): it holds "
                            "secrets; chmod 600 it",
                            path, mode);
    if (mode & 070)
        md_log_warn("tokens file is accessible by its group; chmod 600 it unless that is meant",
                    "path=%s mode=%04o", path, mode);
    return MD_OK;
}

md_err_t md_tokens_load(const char *path, md_tokens_t **out, md_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return md_error_set(err, MD_EIO, "open tokens '%s': %s", path, strerror(errno));
    md_err_t mrc = check_mode(f, path, err);
    if (mrc != MD_OK) {
        fclose(f);
        return mrc;
    }
    md_tokens_t *t = md_calloc(1, sizeof *t);
    char line[1024];
    int lineno = 0;
    const char *why = NULL;
    while (why == NULL && fgets(line, sizeof line, f)) {
        token_t tk;
        bool skip;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f))
            why = "line longer than 1023 bytes";
        else if (parse_line(line, &tk, &skip) != MD_OK)
            why = "expected 'TOKEN ROLE' (token of 16+ characters; role auditor, analyst or "
                  "member:ID)";
        else if (!skip && known(t, tk.digest))
            why = "token given twice";
        else if (!skip) {
            t->v = md_realloc(t->v, (t->n + 1) * sizeof *t->v);
            t->v[t->n++] = tk;
        }
    }
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (why == NULL && read_error)
        why = "read error";
    if (why == NULL && t->n == 0) {
        md_tokens_free(t);
        return md_error_set(err, MD_ECONFIG, "%s: no tokens", path);
    }
    if (why != NULL) {
        md_tokens_free(t);
        return md_error_set(err, MD_ECONFIG, "%s:%d: %s", path, lineno, why);
    }
    *out = t;
    return MD_OK;
}

void md_tokens_free(md_tokens_t *t)
{
    if (t == NULL)
        return;
    free(t->v);
    free(t);
}

bool md_tokens_check(const md_tokens_t *t, const char *token, md_principal_t *who)
{
    unsigned char d[32];
    const token_t *found = NULL;
    if (t == NULL || token == NULL || who == NULL)
        return false;
    digest(token, d);
    for (size_t i = 0; i < t->n; i++) {
        /* No early exit: every entry is compared, so timing reveals nothing. */
        bool same = CRYPTO_memcmp(d, t->v[i].digest, sizeof d) == 0;
        found = same ? &t->v[i] : found;
    }
    if (found == NULL)
        return false;
    *who = found->who;
    return true;
}
