"""gfnx driver of the softgfn peer comparison (written for this comparison; see README.md).

Uses gfnx 0.0.1 for the environments (hypergrid, bit sequences), its batched rollout
(`gfnx.utils.forward_rollout`) and its transformer encoder (`gfnx.networks.Encoder`); the policy
networks, the TB / DB / SubTB losses and the training step are written here with equinox and
optax. One iteration = 16 rollouts + loss + gradients + Adam step, all in one jitted function,
compiled ahead of time (the compile time is recorded separately and not counted in any
iteration). Like every gfnx rollout, each trajectory is padded to the environment's maximum
length (hypergrid: 80 steps + 1; bitseq k = 8: 15 + 1), and the loss re-runs the network on the
padded tensor.
"""

import os
import sys
import time
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import gfnx  # noqa: E402
from gfnx.networks import Encoder  # noqa: E402

NUM_TRAJECTORIES = 16
SUBTB_LAMBDA = 0.9


def masked_log_softmax(logits, invalid):
    """log-softmax over the valid entries; invalid entries get a large negative finite logit."""
    return jax.nn.log_softmax(jnp.where(invalid, -1e9, logits), axis=-1)


class BitseqPolicy(eqx.Module):
    """gfnx's transformer encoder over [BOS] + 15 word tokens, then a word readout per position."""

    encoder: Encoder
    readout: eqx.nn.Linear

    def __init__(self, env, key):
        k1, k2 = jax.random.split(key)
        t = common.TRANSFORMER
        self.encoder = Encoder(
            vocab_size=env.ntoken,
            max_length=env.max_length + 1,
            embedding_size=t["d_model"],
            hidden_size=t["d_model"],
            intermediate_size=t["feedforward"],
            num_layers=t["layers"],
            num_heads=t["heads"],
            dropout_rate=t["dropout"],
            pad_id=env.pad_token,
            key=k1,
        )
        self.readout = eqx.nn.Linear(t["d_model"], env.nchar, key=k2)

    def __call__(self, tokens):
        positions = jnp.arange(tokens.shape[0])
        h = self.encoder(tokens, positions)["layers_out"][-1]  # (16, d_model)
        return jax.vmap(self.readout)(h[1:]).reshape(-1)  # (15 * 2^k,) forward logits


def build(task, key):
    """Environment, its parameters, the network and the head layout for `task`."""
    algo, env_name = task.split("_")
    if env_name == "hypergrid":
        reward = gfnx.GeneralHypergridRewardModule(
            R0=common.HYPERGRID_R0, R1=common.HYPERGRID_R1, R2=common.HYPERGRID_R2
        )
        env = gfnx.HypergridEnvironment(
            reward, dim=common.HYPERGRID_DIM, side=common.HYPERGRID_SIDE
        )
        a_fwd, a_bwd = env.action_space.n, env.backward_action_space.n
        flow = algo in ("db", "subtb")
        out = a_fwd + a_bwd + (1 if flow else 0)
        k_env, k_net = jax.random.split(key)
        net = eqx.nn.MLP(
            in_size=env.dim * env.side,
            out_size=out,
            width_size=256,
            depth=2,
            activation=jax.nn.relu,
            key=k_net,
        )
        heads = {"fwd": a_fwd, "bwd": a_bwd, "learned_pb": True, "flow": flow}
        lr, wd, log_z_lr = 1e-3, 0.0, 0.1
    else:
        # log R = -2 * Hamming distance to the nearest mode (gfnx divides by n; undo it).
        reward = gfnx.BitseqRewardModule(
            sentence_len=common.BITSEQ_N,
            k=common.BITSEQ_K,
            mode_set_size=60,
            reward_exponent=2.0 * common.BITSEQ_N,
        )
        env = gfnx.BitseqEnvironment(reward, n=common.BITSEQ_N, k=common.BITSEQ_K)
        k_env, k_net = jax.random.split(key)
        net = BitseqPolicy(env, k_net)
        heads = {
            "fwd": env.action_space.n,
            "bwd": env.backward_action_space.n,
            "learned_pb": False,
            "flow": False,
        }
        lr, wd, log_z_lr = 2e-3, 1e-5, 0.064
    env_params = env.init(k_env)
    return env, env_params, net, heads, (lr, wd, log_z_lr)


def make_step(algo, env, env_params, net_static, heads, optimizers):
    a_fwd, a_bwd = heads["fwd"], heads["bwd"]
    net_opt, log_z_opt = optimizers

    def apply(net_params, x):
        net = eqx.combine(net_params, net_static)
        return jax.vmap(net)(x)

    def policy_fn(rng_key, obs, params):
        return apply(params["net"], obs)[:, :a_fwd], {}

    def loss_fn(params, traj, info):
        obs = traj.obs
        b, t1 = obs.shape[:2]
        t = t1 - 1
        out = apply(params["net"], obs.reshape((b * t1,) + obs.shape[2:])).reshape(b, t1, -1)
        fwd_logits = out[..., :a_fwd]
        if heads["learned_pb"]:
            bwd_logits = out[..., a_fwd : a_fwd + a_bwd]
        else:
            bwd_logits = jnp.zeros((b, t1, a_bwd), out.dtype)  # uniform backward policy

        def flat(x):
            return x.reshape((b * t,) + x.shape[2:])

        s_prev = jax.tree.map(lambda x: flat(x[:, :-1]), traj.state)
        s_next = jax.tree.map(lambda x: flat(x[:, 1:]), traj.state)
        act = flat(traj.action[:, :-1])
        act_b = env.get_backward_action(s_prev, act, s_next, env_params)
        lpf = masked_log_softmax(
            flat(fwd_logits[:, :-1]), env.get_invalid_mask(s_prev, env_params)
        )
        lpb = masked_log_softmax(
            flat(bwd_logits[:, 1:]), env.get_invalid_backward_mask(s_next, env_params)
        )
        lpf = jnp.take_along_axis(lpf, act[:, None], axis=-1).reshape(b, t)
        lpb = jnp.take_along_axis(lpb, act_b[:, None], axis=-1).reshape(b, t)
        valid = jnp.logical_not(traj.pad[:, :-1])
        lpf = jnp.where(valid, lpf, 0.0)
        lpb = jnp.where(valid, lpb, 0.0)
        log_r = info["log_gfn_reward"]
        if algo == "tb":
            resid = params["log_z"] + lpf.sum(1) - log_r - lpb.sum(1)
            return jnp.mean(resid**2)
        log_flow = out[..., -1]
        if algo == "db":
            nxt = jnp.where(traj.done[:, :-1], traj.log_gfn_reward[:, :-1], log_flow[:, 1:])
            resid = log_flow[:, :-1] + lpf - nxt - lpb
            return jnp.sum(jnp.where(valid, resid**2, 0.0)) / jnp.sum(valid)
        # SubTB, geometric weights lambda^(j - i) normalized within each trajectory.
        log_f = jnp.where(traj.state.is_terminal, log_r[:, None], log_flow)  # (b, t1)
        length = jnp.sum(valid, axis=1)
        c = jnp.concatenate([jnp.zeros((b, 1)), jnp.cumsum(lpf - lpb, axis=1)], axis=1)
        resid = log_f[:, :, None] - log_f[:, None, :] + c[:, None, :] - c[:, :, None]
        i = jnp.arange(t1)[:, None]
        j = jnp.arange(t1)[None, :]
        pair = (i < j)[None] & (j[None] <= length[:, None, None])
        w = jnp.where(pair, SUBTB_LAMBDA ** (j - i).astype(jnp.float32)[None], 0.0)
        per_traj = jnp.sum(w * resid**2, axis=(1, 2)) / jnp.sum(w, axis=(1, 2))
        return jnp.mean(per_traj)

    def step(params, opt_states, key):
        key, k_roll = jax.random.split(key)
        traj, info = gfnx.utils.forward_rollout(
            k_roll, NUM_TRAJECTORIES, policy_fn, params, env, env_params
        )
        loss, grads = jax.value_and_grad(loss_fn)(params, traj, info)
        upd, s_net = net_opt.update(grads["net"], opt_states["net"], params["net"])
        new_params = {"net": optax.apply_updates(params["net"], upd)}
        new_states = {"net": s_net}
        if "log_z" in params:
            upd_z, s_z = log_z_opt.update(grads["log_z"], opt_states["log_z"], params["log_z"])
            new_params["log_z"] = optax.apply_updates(params["log_z"], upd_z)
            new_states["log_z"] = s_z
        return new_params, new_states, key, loss

    return step, apply


def main():
    args = common.parse_args("gfnx")
    algo = args.task.split("_")[0]
    key = jax.random.PRNGKey(args.seed)
    key, k_build = jax.random.split(key)
    env, env_params, net, heads, (lr, wd, log_z_lr) = build(args.task, k_build)
    net_params, net_static = eqx.partition(net, eqx.is_inexact_array)
    net_opt = optax.chain(optax.add_decayed_weights(wd), optax.adam(lr)) if wd else optax.adam(lr)
    log_z_opt = optax.adam(log_z_lr)
    params = {"net": net_params}
    opt_states = {"net": net_opt.init(net_params)}
    if algo == "tb":
        params["log_z"] = jnp.zeros(())
        opt_states["log_z"] = log_z_opt.init(params["log_z"])
    step, apply = make_step(algo, env, env_params, net_static, heads, (net_opt, log_z_opt))

    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_states, key).compile()
    compile_s = time.perf_counter() - t0

    timer = common.IterationTimer()
    loss = None
    for _ in range(args.iterations):
        timer.start()
        params, opt_states, key, loss = compiled(params, opt_states, key)
        jax.block_until_ready((params, loss))
        timer.stop()
    extra = {
        "compile_seconds": compile_s,
        "final_loss": float(loss) if loss is not None else None,
        "peak_rss_mb_training": common.peak_rss_mb(),
        "versions": {"gfnx": version("gfnx"), "jax": version("jax"), "jaxlib": version("jaxlib"),
                     "equinox": version("equinox"), "optax": version("optax")},
        "padded_steps_per_trajectory": env.max_steps_in_episode + 1,
    }
    if "log_z" in params:
        extra["log_z"] = float(params["log_z"])
    if args.task.endswith("hypergrid") and not args.no_exact:
        coords = common.hypergrid_coords()
        obs = np.eye(common.HYPERGRID_SIDE, dtype=np.float32)[coords].reshape(coords.shape[0], -1)
        fwd = jax.jit(lambda p, x: apply(p, x)[:, : heads["fwd"]])
        logits = np.concatenate(
            [np.asarray(fwd(params["net"], obs[i : i + 8192])) for i in range(0, len(obs), 8192)]
        ).astype(np.float64)
        extra["exact_l1"] = common.hypergrid_exact_l1(logits, coords)
    extra["peak_rss_mb_end"] = common.peak_rss_mb()
    common.write_result(args.out, "gfnx", version("gfnx"), args, timer, extra)


if __name__ == "__main__":
    main()
