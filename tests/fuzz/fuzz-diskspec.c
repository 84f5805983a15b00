/* fuzz-diskspec.c — libFuzzer target for xl disk specifications, as
 * `xen-loopctl attach SPEC...` hands them to libxlutil's xlu_disk_parse()
 * and turns the disk into attach arguments.  The input is split into words
 * at newlines (each word one argument, as a shell would pass them).  The
 * client's own wrapper is fuzzed: src/ctl/loopctl.c is compiled in, its main()
 * renamed.  Whatever the words: no crash, no leak, and an accepted spec
 * gives an absolute target, an access of r, w or w!, and a name. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define main loopctl_main
#include "../../src/ctl/loopctl.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_WORDS 16

#define CHECK(x)                                                                 \
        do {                                                                     \
                if (!(x)) {                                                      \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
                                __LINE__, #x);                                   \
                        abort();                                                 \
                }                                                                \
        } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        /* What the wrapper logs on refusals is no finding. */
        log_set_max_level(-1);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 1), *words[MAX_WORDS], *p;
        struct json_object *args = NULL;
        int n = 0;

        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        /* Arguments are C strings: a NUL ends the input. */
        for (p = buf; n < MAX_WORDS;) {
                char *nl = strchr(p, '\n');
                words[n++] = p;
                if (!nl)
                        break;
                *nl = '\0';
                p = nl + 1;
        }

        if (disk_spec_to_args(n, words, &args) == EXIT_OK) {
                const char *target = get_str(args, "target", NULL), *access = get_str(args, "access", NULL);
                char *text = NULL;

                CHECK(target && target[0] == '/');
                CHECK(access && (!strcmp(access, "r") || !strcmp(access, "w") || !strcmp(access, "w!")));
                CHECK(get_str(args, "name", NULL));
                /* A request the client would send: it must format. */
                if (proto_format_request(1, "attach", json_object_get(args), &text) == 0)
                        free(text);
                json_object_put(args);
        }
        free(buf);
        return 0;
}
