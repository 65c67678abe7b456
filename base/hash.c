/*
 * hash.c - the one hash of the in-memory tables (md_base.h): the rules' state
 * cache, the write transaction's stream versions, verify's derived table,
 * market-load's id set.
 */
#include <string.h>

#include "md_base.h"

uint64_t md_hash64(const void *p, size_t n)
{
    const unsigned char *k = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
    for (; n >= 8; n -= 8, k += 8) {
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    if (n)
        memcpy(&w, k, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdull;
    return h ^ h >> 32;
}
