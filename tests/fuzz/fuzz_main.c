/*
 * fuzz_main.c - the libFuzzer entry point of one target: mk/fuzz.mk compiles
 * it once per target with -DFUZZ_FN=md_fuzz_<target>.
 */
#include <stdint.h>
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void cleanup(void)
{
    md_fuzz_cleanup();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FUZZ_FN(data, size);
}
