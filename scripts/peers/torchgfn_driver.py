"""torchgfn driver of the softgfn peer comparison (written for this comparison; see README.md).

Uses torchgfn 2.4.1's environments (HyperGrid, NonAutoregressiveBitSequence), estimators,
sampler and GFlowNet losses (TBGFlowNet, DBGFlowNet, SubTBGFlowNet), the way its own hypergrid
training script does on-policy training: sample 16 trajectories with their log-probabilities
saved, then compute the loss without recomputing the forward policy, backward pass, Adam step.

Hypergrid: torchgfn's MLP (2 x 256, ReLU) with the trunk shared by PF, PB and log F (each
estimator still runs the trunk once per call), KHot (one-hot per coordinate) inputs.
Bit sequences: torchgfn has no encoder-only transformer policy for its non-autoregressive bit
sequence environment, so this driver uses torch.nn.TransformerEncoder with the paper's sizes
(3 layers, d_model 64, 8 heads, feed-forward 64, dropout 0) over [BOS] + 15 word tokens, a word
readout per position and an exit logit, and a uniform backward policy.
"""

import math
import os
import sys
import time
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator  # noqa: E402
from gfn.gflownet import DBGFlowNet, SubTBGFlowNet, TBGFlowNet  # noqa: E402
from gfn.gym import HyperGrid, NonAutoregressiveBitSequence  # noqa: E402
from gfn.preprocessors import IdentityPreprocessor, KHotPreprocessor  # noqa: E402
from gfn.utils.modules import MLP, DiscreteUniform  # noqa: E402

NUM_TRAJECTORIES = 16
SUBTB_LAMBDA = 0.9


class BitseqTransformer(nn.Module):
    """Encoder-only transformer policy over the 15 word slots (-1 = empty) of a bit sequence."""

    def __init__(self, words_per_seq, n_words):
        super().__init__()
        t = common.TRANSFORMER
        d = t["d_model"]
        self.words_per_seq, self.n_words = words_per_seq, n_words
        self.input_dim = words_per_seq
        # Tokens: 0 = empty slot, 1..n_words = word + 1, n_words + 1 = BOS.
        self.embed = nn.Embedding(n_words + 2, d)
        self.position = nn.Parameter(sinusoidal(words_per_seq + 1, d), requires_grad=False)
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=t["heads"],
            dim_feedforward=t["feedforward"],
            dropout=t["dropout"],
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=t["layers"], enable_nested_tensor=False
        )
        self.words = nn.Linear(d, n_words)
        self.exit = nn.Linear(d, 1)

    def forward(self, x):
        shape = x.shape[:-1]
        tokens = x.reshape(-1, self.words_per_seq).long() + 1
        tokens = tokens.clamp(0, self.n_words)  # the sink state s_f holds n_words
        bos = torch.full((tokens.shape[0], 1), self.n_words + 1, dtype=torch.long)
        h = self.embed(torch.cat([bos, tokens], dim=1)) + self.position
        h = self.encoder(h)
        logits = torch.cat([self.words(h[:, 1:]).flatten(1), self.exit(h[:, 0])], dim=1)
        return logits.reshape(*shape, -1)


def sinusoidal(length, d):
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


def build(task):
    algo, env_name = task.split("_")
    if env_name == "hypergrid":
        env = HyperGrid(
            ndim=common.HYPERGRID_DIM,
            height=common.HYPERGRID_SIDE,
            reward_fn_str="original",
            reward_fn_kwargs={
                "R0": common.HYPERGRID_R0,
                "R1": common.HYPERGRID_R1,
                "R2": common.HYPERGRID_R2,
            },
            device="cpu",
        )
        pre = KHotPreprocessor(height=env.height, ndim=env.ndim)
        module_pf = MLP(input_dim=pre.output_dim, output_dim=env.n_actions, hidden_dim=256,
                        n_hidden_layers=2)
        module_pb = MLP(input_dim=pre.output_dim, output_dim=env.n_actions - 1,
                        trunk=module_pf.trunk)
        pf = DiscretePolicyEstimator(module_pf, env.n_actions, preprocessor=pre)
        pb = DiscretePolicyEstimator(module_pb, env.n_actions, is_backward=True, preprocessor=pre)
        lr, wd, log_z_lr = 1e-3, 0.0, 0.1
        if algo == "tb":
            gfn = TBGFlowNet(pf, pb, init_logZ=0.0)
        else:
            module_f = MLP(input_dim=pre.output_dim, output_dim=1, trunk=module_pf.trunk)
            log_f = ScalarEstimator(module_f, preprocessor=pre)
            if algo == "db":
                gfn = DBGFlowNet(pf, pb, log_f)
            else:
                gfn = SubTBGFlowNet(pf, pb, log_f, weighting="geometric_within",
                                    lamda=SUBTB_LAMBDA)
        return env, gfn, module_pf, (lr, wd, log_z_lr)
    env = NonAutoregressiveBitSequence(
        word_size=common.BITSEQ_K,
        seq_size=common.BITSEQ_N,
        n_modes=60,
        reward_exponent=2.0 * common.BITSEQ_N,  # log R = -2 * Hamming distance
        device_str="cpu",
    )
    pre = IdentityPreprocessor(output_dim=env.words_per_seq)
    module_pf = BitseqTransformer(env.words_per_seq, env.n_words)
    pf = DiscretePolicyEstimator(module_pf, env.n_actions, preprocessor=pre)
    pb = DiscretePolicyEstimator(DiscreteUniform(env.n_actions - 1), env.n_actions,
                                 is_backward=True, preprocessor=pre)
    gfn = TBGFlowNet(pf, pb, init_logZ=0.0)
    return env, gfn, module_pf, (2e-3, 1e-5, 0.064)


def main():
    args = common.parse_args("torchgfn")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    env, gfn, module_pf, (lr, wd, log_z_lr) = build(args.task)
    log_z = list(gfn.logz_parameters()) if args.task.startswith("tb") else []
    log_z_ids = {id(p) for p in log_z}
    net = [p for _, p in gfn.named_parameters() if id(p) not in log_z_ids and p.requires_grad]
    groups = [{"params": net, "lr": lr, "weight_decay": wd}]
    if log_z:
        groups.append({"params": log_z, "lr": log_z_lr, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups)

    timer = common.IterationTimer()
    loss = None
    for _ in range(args.iterations):
        timer.start()
        trajectories = gfn.sample_trajectories(env, n=NUM_TRAJECTORIES, save_logprobs=True)
        samples = gfn.to_training_samples(trajectories)
        optimizer.zero_grad()
        loss = gfn.loss(env, samples, recalculate_all_logprobs=False)
        loss.backward()
        optimizer.step()
        timer.stop()
    extra = {
        "final_loss": float(loss.detach()) if loss is not None else None,
        "peak_rss_mb_training": common.peak_rss_mb(),
        "versions": {"torchgfn": version("torchgfn"), "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
    }
    if log_z:
        extra["log_z"] = float(log_z[0].detach())
    if args.task.endswith("hypergrid") and not args.no_exact:
        coords = common.hypergrid_coords()
        x = torch.nn.functional.one_hot(torch.from_numpy(coords), common.HYPERGRID_SIDE)
        x = x.reshape(coords.shape[0], -1).to(torch.get_default_dtype())
        with torch.no_grad():
            logits = torch.cat([module_pf(x[i : i + 8192]) for i in range(0, len(x), 8192)])
        logits = logits.double().numpy()
        extra["exact_l1"] = common.hypergrid_exact_l1(logits, coords)
    extra["peak_rss_mb_end"] = common.peak_rss_mb()
    common.write_result(args.out, "torchgfn", version("torchgfn"), args, timer, extra)


if __name__ == "__main__":
    main()
