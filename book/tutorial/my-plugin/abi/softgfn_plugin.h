/*
 * The softgfn plugin C ABI, version 2, as a C header: what a library must export to be loaded
 * by `softgfn --plugin PATH`. softgfn_plugin::export_plugin! generates all of it for a Rust
 * crate; this header documents it for the Plugins chapter of the softgfn book and lets the
 * C host next to it (host.c) call a plugin. The authority is crates/softgfn-plugin/src/abi.rs;
 * scripts/plugin-tutorial.sh compiles host.c with this header and runs it against the tutorial
 * plugin, so a drift between the two fails CI.
 */
#ifndef SOFTGFN_PLUGIN_H
#define SOFTGFN_PLUGIN_H

/* ANCHOR: types */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ABI version this header describes (softgfn_plugin::ABI_VERSION). */
#define SOFTGFN_PLUGIN_ABI_VERSION 2u

/* Capability bits of softgfn_plugin_capabilities (version 2). */
#define SG_CAP_READABLE 1u          /* softgfn_plugin_readable works on the instance */
#define SG_CAP_STATE_EQUIVALENCE 2u /* softgfn_plugin_canonical_key works on the instance */

/* An environment instance inside the plugin; the host only holds pointers to it. */
typedef struct SgEnv SgEnv;

/* The shapes of an environment (softgfn_plugin::abi::SgEnvSpec, #[repr(C)]). */
typedef struct SgEnvSpec {
    uint64_t state_width;           /* int32_t values in a state row */
    uint64_t num_actions;           /* forward actions, the exit included */
    uint64_t num_backward_actions;  /* backward actions */
    uint64_t feature_dim;           /* float features of a state */
    uint64_t max_trajectory_length; /* bound on forward actions of a trajectory, exit included */
    bool has_exit_action;           /* whether the DAG has an exit action */
    uint32_t exit_action;           /* the exit action, when has_exit_action */
} SgEnvSpec;

_Static_assert(sizeof(SgEnvSpec) == 48, "SgEnvSpec: 5 x uint64_t, bool, uint32_t");
/* ANCHOR_END: types */

/* ANCHOR: status */
/* What every fallible entry point returns. On any status but SG_STATUS_OK it stores a message
 * in *err (or leaves it NULL), which the caller frees with softgfn_plugin_free_string. */
#define SG_STATUS_OK 0               /* success */
#define SG_STATUS_ERROR 1            /* the environment returned an error (its message) */
#define SG_STATUS_PANIC 2            /* the plugin panicked; the panic was caught */
#define SG_STATUS_INVALID_ARGUMENT 3 /* a malformed call: NULL pointer, bad JSON, no such env */
/* ANCHOR_END: status */

/* ANCHOR: functions */
/* Read first; a library without it is not a softgfn plugin. */
uint32_t softgfn_plugin_abi_version(void);
/* The manifest as JSON text (a plugin-owned string in *json). */
int32_t softgfn_plugin_manifest(char **json, char **err);
/* Frees a string the plugin returned (manifest, params, spec name, error message). */
void softgfn_plugin_free_string(char *s);

/* Creates an instance of environment `env` (bare name) from JSON parameters (an object; missing
 * keys take their defaults); destroy frees it. */
int32_t softgfn_plugin_create(const char *env, const char *params_json, SgEnv **out, char **err);
void softgfn_plugin_destroy(SgEnv *h);
int32_t softgfn_plugin_spec(const SgEnv *h, SgEnvSpec *out, char **name, char **err);
int32_t softgfn_plugin_params(const SgEnv *h, char **json, char **err);

/* The Environment trait, batched: `s` holds rows of state_width values, and every output
 * buffer is allocated by the caller with the length the call expects. */
int32_t softgfn_plugin_initial_state(const SgEnv *h, int32_t *out, size_t out_len, char **err);
int32_t softgfn_plugin_forward_masks(const SgEnv *h, const int32_t *s, size_t s_len, bool *out,
                                     size_t out_len, char **err);
int32_t softgfn_plugin_backward_masks(const SgEnv *h, const int32_t *s, size_t s_len, bool *out,
                                      size_t out_len, char **err);
/* Forward actions in; next states and the backward actions that undo them out. */
int32_t softgfn_plugin_step(const SgEnv *h, const int32_t *s, size_t s_len, const uint32_t *a,
                            size_t a_len, int32_t *next, size_t next_len, uint32_t *b,
                            size_t b_len, char **err);
/* Backward actions in; parent states and the forward actions that redo them out. */
int32_t softgfn_plugin_backward_step(const SgEnv *h, const int32_t *s, size_t s_len,
                                     const uint32_t *b, size_t b_len, int32_t *prev,
                                     size_t prev_len, uint32_t *a, size_t a_len, char **err);
int32_t softgfn_plugin_log_reward(const SgEnv *h, const int32_t *s, size_t s_len, double *out,
                                  size_t out_len, char **err);
int32_t softgfn_plugin_encode(const SgEnv *h, const int32_t *s, size_t s_len, float *out,
                              size_t out_len, char **err);

/* The Enumerable capability: *enumerable says whether the instance has it. */
int32_t softgfn_plugin_num_states(const SgEnv *h, bool *enumerable, uint64_t *out, char **err);
int32_t softgfn_plugin_state_index(const SgEnv *h, const int32_t *s, size_t s_len, uint64_t *out,
                                   size_t out_len, char **err);
int32_t softgfn_plugin_states_from_index(const SgEnv *h, const uint64_t *i, size_t i_len,
                                         int32_t *out, size_t out_len, char **err);

/* Version 2: the optional capabilities of an instance, as SG_CAP_* bits. */
int32_t softgfn_plugin_capabilities(const SgEnv *h, uint64_t *out, char **err);
/* The readable form of one state (a plugin-owned string in *text). */
int32_t softgfn_plugin_readable(const SgEnv *h, const int32_t *s, size_t s_len, char **text,
                                char **err);
/* The canonical key of one state: written to out when it fits in out_cap values; its length
 * always goes to *out_len (call again with a larger buffer when it did not fit). */
int32_t softgfn_plugin_canonical_key(const SgEnv *h, const int32_t *s, size_t s_len,
                                     int32_t *out, size_t out_cap, size_t *out_len, char **err);
/* ANCHOR_END: functions */

#endif
