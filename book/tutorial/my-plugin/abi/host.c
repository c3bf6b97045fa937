/*
 * A softgfn plugin host in C: loads a plugin library with dlopen and calls every entry point of
 * the C ABI (softgfn_plugin.h) on its environment `words` (the tutorial plugin, my-plugin).
 * scripts/plugin-tutorial.sh builds and runs it:
 *
 *     cc -std=c11 -Wall -Wextra -Werror -o target/host abi/host.c -ldl
 *     target/host target/release/libmy_plugin.so
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "softgfn_plugin.h"

static void *lib;

static void *symbol(const char *name) {
    void *p = dlsym(lib, name);
    if (p == NULL) {
        fprintf(stderr, "the library does not export %s\n", name);
        exit(1);
    }
    return p;
}

/* An entry point, typed by its prototype in softgfn_plugin.h. */
#define SYM(name) ((__typeof__(name) *)symbol(#name))

/* ANCHOR: check */
/* Prints and frees the message of a failed call (the plugin's string in *err); exits when the
 * status is not the expected one. */
static int32_t check(const char *call, int32_t status, char **err, int32_t expected) {
    if (status != SG_STATUS_OK) {
        printf("%s -> status %d: %s\n", call, (int)status, *err != NULL ? *err : "(no message)");
        SYM(softgfn_plugin_free_string)(*err);
        *err = NULL;
    }
    if (status != expected) {
        fprintf(stderr, "%s: expected status %d\n", call, (int)expected);
        exit(1);
    }
    return status;
}

/* Calls softgfn_plugin_NAME(...) and checks its status; `err` is the caller's message pointer. */
#define CALL(expected, name, ...) \
    check(#name, SYM(softgfn_plugin_##name)(__VA_ARGS__), &err, expected)
/* ANCHOR_END: check */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN_LIBRARY\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    const int32_t OK = SG_STATUS_OK;
    char *err = NULL, *text = NULL;

    /* ANCHOR: load */
    /* 1. The ABI version, before anything else. */
    uint32_t abi = SYM(softgfn_plugin_abi_version)();
    printf("ABI version %u (this host speaks %u)\n", abi, SOFTGFN_PLUGIN_ABI_VERSION);
    if (abi != SOFTGFN_PLUGIN_ABI_VERSION) return 1;

    /* 2. The manifest: JSON text owned by the plugin, freed by it. */
    CALL(OK, manifest, &text, &err);
    printf("manifest: %s\n", text);
    SYM(softgfn_plugin_free_string)(text);

    /* 3. An instance of environment `words`, from partial parameters. */
    SgEnv *env = NULL;
    CALL(OK, create, "words", "{\"max_len\": 3, \"b\": 0.5}", &env, &err);
    SgEnvSpec spec;
    char *name = NULL;
    CALL(OK, spec, env, &spec, &name, &err);
    printf("spec of %s: state_width %llu, num_actions %llu, num_backward_actions %llu, "
           "feature_dim %llu, max_trajectory_length %llu, exit action %u\n",
           name, (unsigned long long)spec.state_width, (unsigned long long)spec.num_actions,
           (unsigned long long)spec.num_backward_actions, (unsigned long long)spec.feature_dim,
           (unsigned long long)spec.max_trajectory_length, spec.exit_action);
    SYM(softgfn_plugin_free_string)(name);
    CALL(OK, params, env, &text, &err);
    printf("params: %s\n", text);
    SYM(softgfn_plugin_free_string)(text);
    /* ANCHOR_END: load */

    /* ANCHOR: calls */
    /* 4. Batched calls with caller-allocated buffers (a words state is a row of 2 values). */
    int32_t s0[2], s1[2], parent[2];
    bool mask[3];
    CALL(OK, initial_state, env, s0, 2, &err);
    CALL(OK, forward_masks, env, s0, 2, mask, 3, &err);
    printf("s0 = [%d, %d], forward mask [%d, %d, %d]\n", s0[0], s0[1], mask[0], mask[1], mask[2]);

    uint32_t append_b = 1, back, redo;
    bool back_mask[1];
    CALL(OK, step, env, s0, 2, &append_b, 1, s1, 2, &back, 1, &err);
    CALL(OK, backward_masks, env, s1, 2, back_mask, 1, &err);
    CALL(OK, backward_step, env, s1, 2, &back, 1, parent, 2, &redo, 1, &err);
    printf("step(s0, 1) = [%d, %d] (backward action %u, valid there: %d); "
           "backward_step = [%d, %d] (forward action %u)\n",
           s1[0], s1[1], back, back_mask[0], parent[0], parent[1], redo);

    double log_r;
    float f[6];
    CALL(OK, log_reward, env, s1, 2, &log_r, 1, &err);
    CALL(OK, encode, env, s1, 2, f, 6, &err);
    printf("log_reward = %g, features [%g, %g, %g, %g, %g, %g]\n", log_r, f[0], f[1], f[2], f[3],
           f[4], f[5]);

    bool enumerable;
    uint64_t n, index, last;
    int32_t row[2];
    CALL(OK, num_states, env, &enumerable, &n, &err);
    CALL(OK, state_index, env, s1, 2, &index, 1, &err);
    last = n - 1;
    CALL(OK, states_from_index, env, &last, 1, row, 2, &err);
    printf("enumerable %d, %llu states; index of [%d, %d] = %llu; state %llu = [%d, %d]\n",
           enumerable, (unsigned long long)n, s1[0], s1[1], (unsigned long long)index,
           (unsigned long long)last, row[0], row[1]);

    /* Version 2: the optional capabilities, then the readable form of s1. */
    uint64_t caps;
    CALL(OK, capabilities, env, &caps, &err);
    CALL(OK, readable, env, s1, 2, &text, &err);
    printf("capabilities: readable %d, state equivalence %d; readable form of [%d, %d]: \"%s\"\n",
           (caps & SG_CAP_READABLE) != 0, (caps & SG_CAP_STATE_EQUIVALENCE) != 0, s1[0], s1[1],
           text);
    SYM(softgfn_plugin_free_string)(text);
    int32_t key[2];
    size_t key_len;
    CALL(SG_STATUS_ERROR, canonical_key, env, s1, 2, key, 2, &key_len, &err);
    /* ANCHOR_END: calls */

    /* ANCHOR: errors */
    /* 5. Failures are statuses with messages, never crashes. */
    SgEnv *bad = NULL;
    uint32_t exit_action = spec.exit_action;
    CALL(SG_STATUS_ERROR, create, "words", "{\"max_len\": 0}", &bad, &err);
    CALL(SG_STATUS_INVALID_ARGUMENT, create, "sentences", "{}", &bad, &err);
    CALL(SG_STATUS_ERROR, step, env, s1, 2, &exit_action, 1, s0, 2, &back, 1, &err);
    CALL(SG_STATUS_INVALID_ARGUMENT, step, env, NULL, 2, &append_b, 1, s1, 2, &back, 1, &err);
    SYM(softgfn_plugin_destroy)(env);
    /* ANCHOR_END: errors */
    return 0;
}
