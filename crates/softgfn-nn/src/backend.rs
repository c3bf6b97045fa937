//! The device-generic network backend: taped forward, surrogate-gradient backward, parameter
//! I/O. The architecture (MLP, transformer, graph network) only supplies the forward pass
//! ([`Arch`]).

use std::any::Any;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use dfdx::shapes::{Axis, Rank0};
use dfdx::tensor::{
    Gradients, Merge, NoneTape, OwnedTape, PutTape, SplitTape, Tape, Tensor, Trace,
};
use dfdx::tensor_ops::{Backward, BroadcastTo, ReshapeTo, SumTo, TryAdd, TryMatMul, TryMul};

use crate::Device;
use crate::error::backend_err;
use crate::graph::GraphArch;
use crate::host::{HostNet, RowCache};
use crate::mlp::MlpArch;
use crate::model::Backend;
use crate::params::{Flat, Group, HostAdam, NetDevice, ParamMeta, ParamStore, check_same_meta};
use crate::transformer::TransformerArch;
use crate::{
    HeadSpec, NamedTensor, NetSpec, NnError, OptimizerSpec, OptimizerState, Outputs, ScalarSpec,
};

/// A row-major batch matrix.
pub(crate) type Matrix<D, T = NoneTape> = Tensor<(usize, usize), f32, D, T>;
/// The tape used for training forwards.
pub(crate) type Taped<D> = OwnedTape<f32, D>;

/// Host-side dropout masks of one training forward (values `0` or `1 / (1 - p)`), in the order
/// the architecture consumes them. Kept with the pending forward so that a re-recorded graph is
/// the same graph.
pub(crate) type DropoutMasks = Vec<Vec<f32>>;

/// The forward pass of one architecture.
#[derive(Clone, Debug)]
pub(crate) enum Arch {
    Mlp(MlpArch),
    Transformer(TransformerArch),
    Graph(GraphArch),
}

impl Arch {
    /// The host kernel of this architecture ([`crate::host`]), if it has one.
    pub(crate) fn host_net(&self) -> Option<Box<dyn HostNet>> {
        match self {
            Arch::Mlp(a) => Some(a.host_net()),
            Arch::Transformer(a) => {
                Some(Box::new(crate::host::transformer::HostTransformer::new(a)))
            }
            Arch::Graph(_) => None,
        }
    }

    /// Dropout masks for a training forward of `rows` rows, drawn from `rng` (empty when the
    /// architecture has no dropout).
    fn dropout_masks(&self, rows: usize, rng: &mut dyn rand::RngCore) -> DropoutMasks {
        match self {
            Arch::Mlp(_) => Vec::new(),
            Arch::Transformer(t) => t.dropout_masks(rows, rng),
            Arch::Graph(_) => Vec::new(),
        }
    }

    /// [`dropout_masks`](Self::dropout_masks) written into `masks`, reusing its buffers.
    fn fill_dropout_masks(
        &self,
        rows: usize,
        rng: &mut dyn rand::RngCore,
        masks: &mut DropoutMasks,
    ) {
        match self {
            Arch::Transformer(t) => t.fill_dropout_masks(rows, rng, masks),
            Arch::Mlp(_) | Arch::Graph(_) => masks.clear(),
        }
    }

    /// Token ids of an input whose every token is one-hot (only the transformer embeds tokens;
    /// `None` for other architectures and other inputs).
    fn token_ids(&self, input: &[f32], rows: usize) -> Option<Vec<usize>> {
        match self {
            Arch::Transformer(a) => a.token_ids(input, rows),
            Arch::Mlp(_) | Arch::Graph(_) => None,
        }
    }

    /// The network on any tape: one output matrix per head (`rows x dim`). With `tokens`, `x`
    /// only carries the tape and the transformer gathers the embedding rows of the ids.
    fn run<D: NetDevice, T>(
        &self,
        store: &ParamStore<D>,
        x: Matrix<D, T>,
        tokens: Option<&[usize]>,
        rows: usize,
        masks: &[Vec<f32>],
    ) -> Result<Vec<Matrix<D, T>>, D::Err>
    where
        T: Tape<f32, D> + Merge<NoneTape>,
    {
        match self {
            Arch::Mlp(a) => a.run(store, x, rows),
            Arch::Transformer(a) => a.run(store, x, tokens, rows, masks),
            Arch::Graph(a) => a.run(store, x, rows),
        }
    }
}

/// `x @ W + b` with parameters `w` (flat, viewed as `[fan_in, fan_out]`) and `b` of `store`, on
/// any tape; `x` has `rows` rows.
pub(crate) fn linear<D: NetDevice, T>(
    store: &ParamStore<D>,
    x: Matrix<D, T>,
    (w, b): (usize, usize),
    rows: usize,
) -> Result<Matrix<D, T>, D::Err>
where
    T: Tape<f32, D> + Merge<NoneTape>,
{
    let shape = &store.meta()[w].shape;
    let (fan_in, fan_out) = (shape[0], shape[1]);
    // Contiguous reshape: same buffer and tensor id, so gradients land on the flat tensor.
    let w = store
        .value(w)
        .clone()
        .try_reshape_like(&(fan_in, fan_out))?;
    let b = store
        .value(b)
        .clone()
        .try_broadcast_like::<(usize, usize), Axis<0>>(&(rows, fan_out))?;
    x.try_matmul(w)?.try_add(b)
}

/// A tensor consumed several times on one tape: the first [`take`](Shared::take) gets the
/// recorded tape, later ones start empty tapes on the same tensor (same id). Merging every
/// consumer's tape into the loss puts all backward ops on one tape; dfdx runs them in reverse
/// creation order, so all consumers' contributions to the tensor's gradient are summed before
/// the ops that produced it run.
pub(crate) struct Shared<S: dfdx::shapes::Shape, D: NetDevice, T> {
    value: Tensor<S, f32, D>,
    tape: Option<T>,
}

impl<S: dfdx::shapes::Shape, D: NetDevice, T: Tape<f32, D>> Shared<S, D, T> {
    pub(crate) fn new(t: Tensor<S, f32, D, T>) -> Self {
        let (value, tape) = t.split_tape();
        Self {
            value,
            tape: Some(tape),
        }
    }

    pub(crate) fn take(&mut self) -> Tensor<S, f32, D, T> {
        match self.tape.take() {
            Some(t) => self.value.clone().put_tape(t),
            None => self.value.retaped::<T>(),
        }
    }
}

/// The recorded graph of a `forward_train`: head outputs carrying the (split, per-head) tapes.
struct Graph<D: NetDevice> {
    heads: Vec<Matrix<D, Taped<D>>>,
}

/// Where the graph of the latest `forward_train` waits for its `backward`.
///
/// dfdx tapes hold `Box<dyn FnOnce>` backward closures that are not `Send`, while `Model` must be
/// `Send`. So the tape cannot live inside the model. Instead it is parked in a one-slot
/// thread-local, keyed by a token that the model keeps. `backward` on the same thread (the normal
/// case) takes it from there; if it is gone (the model moved threads, or another model's
/// `forward_train` on this thread took the slot) `backward` re-records the forward from the
/// saved input, which yields exactly the same gradients (the parameters cannot have changed: every
/// parameter update discards the pending forward). The slot holds at most one graph per thread.
mod graph_slot {
    use std::any::Any;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    type Slot = Option<(u64, Box<dyn Any>)>;

    thread_local! {
        static SLOT: RefCell<Slot> = const { RefCell::new(None) };
    }

    static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

    /// A token never handed out before.
    pub(super) fn new_token() -> u64 {
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks `graph` under `token`, dropping whatever the slot held (outside the borrow).
    pub(super) fn put(token: u64, graph: Box<dyn Any>) {
        let old = SLOT.try_with(|s| s.borrow_mut().replace((token, graph)));
        drop(old);
    }

    /// Takes the graph parked under `token`, if it is still there.
    pub(super) fn take(token: u64) -> Option<Box<dyn Any>> {
        SLOT.try_with(|s| {
            let mut s = s.borrow_mut();
            let hit = matches!(&*s, Some((t, _)) if *t == token);
            if hit { s.take().map(|(_, g)| g) } else { None }
        })
        .ok()
        .flatten()
    }

    /// Drops the graph parked under `token`, if it is still there.
    pub(super) fn discard(token: u64) {
        drop(take(token));
    }
}

/// A network input on the device: the feature matrix, or, when every token of a transformer's
/// input is one-hot, the token ids (and a `1 x 1` placeholder matrix that carries the tape), so
/// that the embedding is a gather of rows instead of a product with a one-hot matrix. Both give
/// the same embeddings: a one-hot row times the embedding matrix adds exact zeros to one row.
#[derive(Clone)]
struct NetInput<D: NetDevice> {
    x: Matrix<D>,
    tokens: Option<Vec<usize>>,
}

/// What `backward` needs from the latest `forward_train`.
struct PendingForward<D: NetDevice> {
    token: u64,
    rows: usize,
    /// The input, for re-recording the graph when the parked one is unavailable.
    input: Option<NetInput<D>>,
    /// The dropout masks of the forward, for the same reason.
    masks: DropoutMasks,
    /// Whether the forward ran on the host kernels (its record is in the training instance).
    host: bool,
}

/// The host-kernel path of a CPU backend (see [`crate::host`]).
#[derive(Debug)]
struct HostPath {
    /// The parameter mirror and the inference instance, locked by the inference forwards.
    infer: Mutex<HostInfer>,
    /// The instance that records the training forward for its backward.
    train: Box<dyn HostNet>,
    /// Pending gradients of every parameter (scalars last), valid when `pending`: the host path
    /// accumulates gradients here and hands them to the store at the step, so the store sees
    /// the same sums the dfdx path builds (`g1 + g2 + ...`, each `g` from zero).
    grads: Vec<Vec<f32>>,
    /// One backward's gradients while others are pending.
    scratch: Vec<Vec<f32>>,
    /// Whether `grads` holds gradients not yet handed to the store.
    pending: bool,
    /// Whether the kernel reuses rows unless told otherwise.
    reuse_by_default: bool,
    /// Buffers of the host Adam step.
    adam: HostAdam,
    /// The mirror's `version` that `train` last heard of (see `HostNet::params_changed`).
    train_version: u64,
}

/// What the inference forwards share.
#[derive(Debug)]
struct HostInfer {
    /// Host copies of the network parameters (scalars excluded), refreshed when `stale`.
    params: Vec<Vec<f32>>,
    /// Refreshes of `params` so far.
    version: u64,
    /// Whether the parameters changed since the last refresh.
    stale: bool,
    /// The inference instance.
    net: Box<dyn HostNet>,
    /// Rows of the inference forwards since the last parameter change, for the training
    /// forward (absent when the architecture keeps no row records).
    cache: Option<RowCache>,
}

impl HostPath {
    /// The host path of `arch` with `num_params` parameters (scalars included), or `None` when
    /// the architecture has no host kernel.
    fn new(arch: &Arch, input_dim: usize, head_dims: &[usize], num_params: usize) -> Option<Self> {
        let net = arch.host_net()?;
        Some(Self {
            reuse_by_default: net.reuse_rows_by_default(),
            train: net.fresh(),
            infer: Mutex::new(HostInfer {
                params: Vec::new(),
                stale: true,
                version: 0,
                cache: RowCache::new(input_dim, net.row_record_len(head_dims)),
                net,
            }),
            grads: vec![Vec::new(); num_params],
            scratch: vec![Vec::new(); num_params],
            pending: false,
            adam: HostAdam::default(),
            train_version: 0,
        })
    }

    fn mark_stale(&mut self) {
        let infer = self.infer.get_mut().unwrap_or_else(PoisonError::into_inner);
        infer.stale = true;
        if let Some(c) = &mut infer.cache {
            c.clear();
        }
    }
}

/// Copies the network parameters of `store` into the mirror when it is stale.
fn refresh_mirror<D: NetDevice>(store: &ParamStore<D>, num_net: usize, infer: &mut HostInfer) {
    if !infer.stale {
        return;
    }
    infer.params.resize_with(num_net, Vec::new);
    for (k, p) in infer.params.iter_mut().enumerate() {
        p.resize(store.meta()[k].numel(), 0.0);
        store.value(k).copy_into(p);
    }
    infer.stale = false;
    infer.version += 1;
    infer.net.params_changed();
}

/// A network (any [`Arch`]) with heads and learned scalars on dfdx device `D`.
pub(crate) struct NetBackend<D: NetDevice> {
    dev: D,
    device: Device,
    spec: NetSpec,
    arch: Arch,
    head_dims: Vec<usize>,
    input_dim: usize,
    /// Number of network (non-scalar) parameters; scalars follow them.
    num_net: usize,
    store: ParamStore<D>,
    /// Host mirror of the scalars (tiny, read every batch).
    scalar_cache: Vec<f32>,
    pending: Option<PendingForward<D>>,
    /// The buffers of the latest discarded or consumed forward's dropout masks, reused by the
    /// next training forward.
    spare_masks: DropoutMasks,
    /// The host kernels (CPU only, architectures that have them).
    host: Option<HostPath>,
    /// Run the dfdx path even where host kernels exist (tests compare the two).
    reference: bool,
    /// Whether training forwards reuse the rows of inference forwards (`None`: as the host
    /// kernel prefers).
    reuse: Option<bool>,
}

impl<D: NetDevice> fmt::Debug for NetBackend<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetBackend")
            .field("device", &self.device)
            .field("spec", &self.spec)
            .field("groups", &self.store.group_names())
            .field("pending_forward", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: NetDevice> Drop for NetBackend<D> {
    fn drop(&mut self) {
        self.discard_pending();
    }
}

/// Parameters, optimizer groups and initial values of a network, as built by an architecture.
pub(crate) struct Layout {
    /// Every parameter: the network's first (torso, then heads in order), then the scalars.
    pub meta: Vec<ParamMeta>,
    /// `torso`, `head:<name>`..., `scalar:<name>`... with learning rates applied.
    pub groups: Vec<Group>,
    /// Initial host values, one per `meta` entry.
    pub values: Vec<Vec<f32>>,
    /// The forward pass, with indices into `meta`.
    pub arch: Arch,
}

/// Optimizer groups of a network with these heads and scalars: `torso` (group 0), one
/// `head:<name>` per head (group `1 + i`) and one `scalar:<name>` per scalar, all at the default
/// learning rate.
pub(crate) fn groups(
    heads: &[HeadSpec],
    scalars: &[ScalarSpec],
    optimizer: &OptimizerSpec,
) -> Vec<Group> {
    let lr = optimizer.adam.learning_rate;
    let group = |name: String| Group {
        name,
        learning_rate: lr,
        steps: 0,
    };
    let mut groups = vec![group("torso".into())];
    groups.extend(heads.iter().map(|h| group(format!("head:{}", h.name))));
    groups.extend(scalars.iter().map(|s| group(format!("scalar:{}", s.name))));
    groups
}

/// Appends the scalars' parameters (`scalar.<name>`, `[1]`, group `1 + heads + i`) and values.
pub(crate) fn push_scalars(layout: &mut Layout, num_heads: usize, scalars: &[ScalarSpec]) {
    for (i, s) in scalars.iter().enumerate() {
        layout.meta.push(ParamMeta {
            name: format!("scalar.{}", s.name),
            shape: vec![1],
            group: 1 + num_heads + i,
        });
        layout.values.push(vec![s.init]);
    }
}

/// Applies the optimizer's per-group learning-rate overrides.
pub(crate) fn apply_learning_rates(
    groups: &mut [Group],
    optimizer: &OptimizerSpec,
) -> Result<(), NnError> {
    for (name, lr) in &optimizer.group_learning_rates {
        if !(lr.is_finite() && *lr >= 0.0) {
            return Err(NnError::InvalidSpec(format!(
                "learning rate of group `{name}` must be finite and >= 0, found {lr}"
            )));
        }
        match groups.iter_mut().find(|g| &g.name == name) {
            Some(g) => g.learning_rate = *lr,
            None => {
                return Err(NnError::UnknownGroup {
                    name: name.clone(),
                    valid: groups.iter().map(|g| g.name.clone()).collect(),
                });
            }
        }
    }
    Ok(())
}

impl<D: NetDevice> NetBackend<D> {
    /// Builds the backend from a validated spec and its layout.
    pub(crate) fn new(
        dev: D,
        device: Device,
        spec: &NetSpec,
        adam: &crate::AdamConfig,
        layout: Layout,
    ) -> Result<Self, NnError> {
        let Layout {
            meta,
            groups,
            values,
            arch,
        } = layout;
        let num_net = meta.len() - spec.scalars().len();
        let host = match device {
            Device::Cpu => HostPath::new(&arch, spec.input_dim(), &spec.head_dims(), meta.len()),
            Device::Cuda(_) => None,
        };
        let store = ParamStore::new(dev.clone(), meta, values, groups, adam.clone())?;
        let mut backend = Self {
            dev,
            device,
            head_dims: spec.head_dims(),
            input_dim: spec.input_dim(),
            spec: spec.clone(),
            arch,
            num_net,
            store,
            scalar_cache: Vec::new(),
            pending: None,
            spare_masks: Vec::new(),
            host,
            reference: false,
            reuse: None,
        };
        backend.refresh_scalars();
        Ok(backend)
    }

    /// The host path, unless absent or switched off for the reference kernels.
    fn active_host(&self) -> Option<&HostPath> {
        self.host.as_ref().filter(|_| !self.reference)
    }

    /// Marks the parameter mirror stale (after anything that changes parameters).
    fn params_changed(&mut self) {
        if let Some(h) = &mut self.host {
            h.mark_stale();
        }
    }

    /// Hands the host path's pending gradients to the store.
    fn flush_host_grads(&mut self) -> Result<(), NnError> {
        let Some(host) = &mut self.host else {
            return Ok(());
        };
        if !host.pending {
            return Ok(());
        }
        host.pending = false;
        self.store.accumulate_host(&host.grads)
    }

    /// Runs the dfdx path instead of the host kernels (`on`), or back. Pending gradients are
    /// kept; a pending forward is discarded.
    pub(crate) fn set_reference(&mut self, on: bool) -> Result<(), NnError> {
        self.flush_host_grads()?;
        self.discard_pending();
        self.params_changed();
        self.reference = on;
        Ok(())
    }

    /// An inference forward on the host kernels. Without dropout, and while the row cache
    /// wants them, it runs as a recorded forward and its rows are kept for a training forward.
    fn host_inference(
        &self,
        host: &HostPath,
        input: &[f32],
        rows: usize,
        masks: &[Vec<f32>],
        out: &mut Outputs,
    ) {
        let tokens = self.arch.token_ids(input, rows);
        let mut guard = host.infer.lock().unwrap_or_else(PoisonError::into_inner);
        let infer = &mut *guard;
        refresh_mirror(&self.store, self.num_net, infer);
        let keep = self.reuse.unwrap_or(host.reuse_by_default)
            && masks.is_empty()
            && infer.cache.as_ref().is_some_and(|c| c.wants(rows));
        infer.net.forward(
            &infer.params,
            input,
            tokens.as_deref(),
            rows,
            masks,
            out,
            keep,
        );
        if keep && let Some(cache) = &mut infer.cache {
            let net = &infer.net;
            cache.insert_rows(input, rows, |r, dst| net.export_row(r, out, dst));
        }
    }

    /// The host backward of the pending host forward.
    fn host_backward(&mut self, head_grads: &Outputs, scalar_grads: &[f32]) -> Result<(), NnError> {
        let num_net = self.num_net;
        let Some(host) = &mut self.host else {
            return Err(NnError::NoPendingForward);
        };
        let infer = host.infer.get_mut().unwrap_or_else(PoisonError::into_inner);
        refresh_mirror(&self.store, num_net, infer);
        let target = if host.pending {
            &mut host.scratch
        } else {
            &mut host.grads
        };
        for (t, m) in target.iter_mut().zip(self.store.meta()) {
            t.resize(m.numel(), 0.0);
            t.fill(0.0);
        }
        host.train
            .backward(&infer.params, head_grads, &mut target[..num_net]);
        for (t, &g) in target[num_net..].iter_mut().zip(scalar_grads) {
            t[0] = g;
        }
        if host.pending {
            for (acc, g) in host.grads.iter_mut().zip(&host.scratch) {
                for (a, &v) in acc.iter_mut().zip(g) {
                    *a += v;
                }
            }
        }
        host.pending = true;
        if self.store.has_grads() {
            // Gradients of the dfdx path are pending (the reference switch changed in the
            // middle of a step): keep the order of the sums.
            self.flush_host_grads()?;
        }
        Ok(())
    }

    fn refresh_scalars(&mut self) {
        self.scalar_cache.clear();
        for k in self.num_net..self.store.num_values() {
            let v = self.store.host_value(k);
            self.scalar_cache.push(v.first().copied().unwrap_or(0.0));
        }
    }

    fn discard_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            graph_slot::discard(p.token);
            self.spare_masks = p.masks;
        }
    }

    fn check_input(&self, input: &[f32], rows: usize) -> Result<(), NnError> {
        let expected = rows.checked_mul(self.input_dim);
        if expected != Some(input.len()) {
            return Err(NnError::Shape {
                what: "input".into(),
                expected: format!(
                    "rows * input_dim = {rows} * {} = {} values",
                    self.input_dim,
                    expected.map_or_else(|| "overflow".to_string(), |e| e.to_string())
                ),
                found: format!("{} values", input.len()),
            });
        }
        if let Arch::Graph(g) = &self.arch {
            g.check_input(input, rows)?;
        }
        Ok(())
    }

    fn input_tensor(&self, input: &[f32], rows: usize) -> Result<NetInput<D>, NnError> {
        let tokens = self.arch.token_ids(input, rows);
        let x = match tokens {
            Some(_) => self.dev.try_tensor_from_vec(vec![0.0], (1, 1)),
            None => self
                .dev
                .try_tensor_from_vec(input.to_vec(), (rows, self.input_dim)),
        }
        .map_err(backend_err)?;
        Ok(NetInput { x, tokens })
    }

    /// Records the taped forward of `input`.
    fn record(
        &self,
        input: NetInput<D>,
        rows: usize,
        masks: &[Vec<f32>],
    ) -> Result<Graph<D>, D::Err> {
        let mut grads = Gradients::leaky();
        // Allocate every network parameter's gradient up front so that `get` always finds it.
        for k in 0..self.num_net {
            grads.try_alloc_for(self.store.value(k))?;
        }
        let heads = self.arch.run(
            &self.store,
            input.x.traced(grads),
            input.tokens.as_deref(),
            rows,
            masks,
        )?;
        Ok(Graph { heads })
    }

    fn copy_heads<T>(heads: &[Matrix<D, T>], out: &mut Outputs) {
        for (j, t) in heads.iter().enumerate() {
            t.copy_into(out.head_mut(j));
        }
    }

    fn check_head_grads(&self, head_grads: &Outputs, rows: usize) -> Result<(), NnError> {
        let found_dims: Vec<usize> = (0..head_grads.num_heads())
            .map(|j| head_grads.dim(j))
            .collect();
        if head_grads.rows() != rows || found_dims != self.head_dims {
            return Err(NnError::Shape {
                what: "head gradients".into(),
                expected: format!(
                    "{rows} rows with head dims {:?} (as returned by forward_train)",
                    self.head_dims
                ),
                found: format!("{} rows with head dims {:?}", head_grads.rows(), found_dims),
            });
        }
        Ok(())
    }

    /// Surrogate-gradient backprop of one batch; returns one gradient per network parameter.
    fn network_grads(
        &self,
        pending: &PendingForward<D>,
        head_grads: &Outputs,
    ) -> Result<Vec<Flat<D>>, NnError> {
        let rows = pending.rows;
        if rows == 0 {
            return (0..self.num_net)
                .map(|k| {
                    self.dev
                        .try_zeros_like(self.store.value(k))
                        .map_err(backend_err)
                })
                .collect();
        }
        let parked = graph_slot::take(pending.token).and_then(|g| g.downcast::<Graph<D>>().ok());
        let graph = match parked {
            Some(g) => *g,
            None => {
                let x = pending.input.clone().ok_or(NnError::NoPendingForward)?;
                self.record(x, rows, &pending.masks).map_err(backend_err)?
            }
        };
        // Surrogate: sum_h sum(out_h * grad_h). Its gradient w.r.t. out_h is grad_h, so its
        // parameter gradients are the loss's.
        let mut total: Option<Tensor<Rank0, f32, D, Taped<D>>> = None;
        for (j, out) in graph.heads.into_iter().enumerate() {
            let g: Matrix<D> = self
                .dev
                .try_tensor_from_vec(head_grads.head(j).to_vec(), (rows, self.head_dims[j]))
                .map_err(backend_err)?;
            let s = out
                .try_mul(g)
                .and_then(|p| p.try_sum::<Rank0, _>())
                .map_err(backend_err)?;
            total = Some(match total {
                None => s,
                Some(t) => t.try_add(s).map_err(backend_err)?,
            });
        }
        let total = total.ok_or_else(|| NnError::Backend("model has no heads".into()))?;
        let grads = total.try_backward().map_err(backend_err)?;
        Ok((0..self.num_net)
            .map(|k| grads.get(self.store.value(k)))
            .collect())
    }
}

impl<D: NetDevice> Backend for NetBackend<D>
where
    Self: Send + Sync,
{
    fn spec(&self) -> &NetSpec {
        &self.spec
    }

    fn device(&self) -> Device {
        self.device
    }

    fn head_dims(&self) -> &[usize] {
        &self.head_dims
    }

    fn forward(&self, input: &[f32], rows: usize, out: &mut Outputs) -> Result<(), NnError> {
        self.check_input(input, rows)?;
        out.resize(rows, &self.head_dims);
        if rows == 0 {
            return Ok(());
        }
        if let Some(host) = self.active_host() {
            self.host_inference(host, input, rows, &[], out);
            return Ok(());
        }
        let x = self.input_tensor(input, rows)?;
        let heads = self
            .arch
            .run::<D, NoneTape>(&self.store, x.x, x.tokens.as_deref(), rows, &[])
            .map_err(backend_err)?;
        Self::copy_heads(&heads, out);
        Ok(())
    }

    fn forward_dropout(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError> {
        self.check_input(input, rows)?;
        out.resize(rows, &self.head_dims);
        if rows == 0 {
            return Ok(());
        }
        let masks = self.arch.dropout_masks(rows, rng);
        if let Some(host) = self.active_host() {
            self.host_inference(host, input, rows, &masks, out);
            return Ok(());
        }
        let x = self.input_tensor(input, rows)?;
        let heads = self
            .arch
            .run::<D, NoneTape>(&self.store, x.x, x.tokens.as_deref(), rows, &masks)
            .map_err(backend_err)?;
        Self::copy_heads(&heads, out);
        Ok(())
    }

    fn forward_train(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError> {
        self.check_input(input, rows)?;
        self.discard_pending();
        out.resize(rows, &self.head_dims);
        let token = graph_slot::new_token();
        let mut saved = None;
        let mut masks = std::mem::take(&mut self.spare_masks);
        self.arch.fill_dropout_masks(rows, rng, &mut masks);
        if !self.reference
            && let Some(host) = &mut self.host
        {
            let tokens = self.arch.token_ids(input, rows);
            let infer = host.infer.get_mut().unwrap_or_else(PoisonError::into_inner);
            refresh_mirror(&self.store, self.num_net, infer);
            if host.train_version != infer.version {
                host.train_version = infer.version;
                host.train.params_changed();
            }
            let reuse = self.reuse.unwrap_or(host.reuse_by_default);
            let reusing = match (&mut infer.cache, masks.is_empty() && reuse) {
                (Some(cache), true) => Some(cache.lookup(input, rows)),
                _ => None,
            };
            match reusing {
                Some((records, hits)) if hits > 0 => host.train.forward_reusing(
                    &infer.params,
                    input,
                    tokens.as_deref(),
                    rows,
                    &records,
                    out,
                ),
                _ => host.train.forward(
                    &infer.params,
                    input,
                    tokens.as_deref(),
                    rows,
                    &masks,
                    out,
                    true,
                ),
            }
            self.pending = Some(PendingForward {
                token,
                rows,
                input: None,
                masks,
                host: true,
            });
            return Ok(());
        }
        if rows > 0 {
            let x = self.input_tensor(input, rows)?;
            let graph = self.record(x.clone(), rows, &masks).map_err(backend_err)?;
            Self::copy_heads(&graph.heads, out);
            graph_slot::put(token, Box::new(graph));
            saved = Some(x);
        }
        self.pending = Some(PendingForward {
            token,
            rows,
            input: saved,
            masks,
            host: false,
        });
        Ok(())
    }

    fn backward(&mut self, head_grads: &Outputs, scalar_grads: &[f32]) -> Result<(), NnError> {
        let rows = match &self.pending {
            Some(p) => p.rows,
            None => return Err(NnError::NoPendingForward),
        };
        self.check_head_grads(head_grads, rows)?;
        if scalar_grads.len() != self.scalar_cache.len() {
            return Err(NnError::Shape {
                what: "scalar gradients".into(),
                expected: format!("{} values (one per scalar)", self.scalar_cache.len()),
                found: format!("{} values", scalar_grads.len()),
            });
        }
        let Some(pending) = self.pending.take() else {
            return Err(NnError::NoPendingForward);
        };
        if pending.host {
            self.spare_masks = pending.masks;
            return self.host_backward(head_grads, scalar_grads);
        }
        self.flush_host_grads()?;
        let mut grads = self.network_grads(&pending, head_grads)?;
        self.spare_masks = pending.masks;
        for &g in scalar_grads {
            grads.push(
                self.dev
                    .try_tensor_from_vec(vec![g], (1,))
                    .map_err(backend_err)?,
            );
        }
        self.store.accumulate(grads)
    }

    fn step(&mut self) -> Result<f32, NnError> {
        self.discard_pending();
        let norm = match &mut self.host {
            // Host gradients step on the host (bitwise dfdx's Adam, without its temporaries);
            // the reference kernels keep dfdx's Adam, so that the tests compare the two.
            Some(host) if host.pending && !self.reference => {
                host.pending = false;
                self.store.step_host(&host.grads, &mut host.adam)
            }
            _ => {
                self.flush_host_grads()?;
                self.store.step()
            }
        };
        self.refresh_scalars();
        self.params_changed();
        norm
    }

    fn scalars(&self) -> &[f32] {
        &self.scalar_cache
    }

    fn set_scalar(&mut self, i: usize, value: f32) {
        assert!(
            i < self.scalar_cache.len(),
            "scalar index {i} out of range: the model has {} scalars",
            self.scalar_cache.len()
        );
        self.store.set_host_value(self.num_net + i, &[value]);
        self.scalar_cache[i] = value;
    }

    fn param_meta(&self) -> &[ParamMeta] {
        self.store.meta()
    }

    fn parameters(&self) -> Vec<NamedTensor> {
        self.store.to_named()
    }

    fn set_parameters(&mut self, params: &[NamedTensor]) -> Result<(), NnError> {
        self.store.set_named(params)?;
        self.discard_pending();
        self.refresh_scalars();
        self.params_changed();
        Ok(())
    }

    fn gradients(&self) -> Vec<NamedTensor> {
        match &self.host {
            // Host gradients are handed to the store at once while it holds some, so here
            // the store has none.
            Some(h) if h.pending => self
                .store
                .meta()
                .iter()
                .zip(&h.grads)
                .map(|(m, g)| NamedTensor {
                    name: m.name.clone(),
                    shape: m.shape.clone(),
                    data: g.clone(),
                })
                .collect(),
            _ => self.store.gradients_named(),
        }
    }

    fn optimizer_state(&self) -> OptimizerState {
        self.store.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), NnError> {
        self.store.set_optimizer_state(state)
    }

    fn clone_fresh(&self) -> Result<Box<dyn Backend>, NnError> {
        let mut clone = Self {
            dev: self.dev.clone(),
            device: self.device,
            spec: self.spec.clone(),
            head_dims: self.head_dims.clone(),
            arch: self.arch.clone(),
            input_dim: self.input_dim,
            num_net: self.num_net,
            store: self.store.clone_fresh()?,
            scalar_cache: Vec::new(),
            pending: None,
            spare_masks: Vec::new(),
            host: match self.device {
                Device::Cpu => HostPath::new(
                    &self.arch,
                    self.input_dim,
                    &self.head_dims,
                    self.store.meta().len(),
                ),
                Device::Cuda(_) => None,
            },
            reference: self.reference,
            reuse: self.reuse,
        };
        clone.refresh_scalars();
        Ok(Box::new(clone))
    }

    fn copy_from(&mut self, source: &dyn Backend) -> Result<(), NnError> {
        match source.as_any().downcast_ref::<Self>() {
            Some(src) => self.store.copy_values_from(&src.store)?,
            None => {
                check_same_meta(self.store.meta(), source.param_meta())?;
                self.store.set_named(&source.parameters())?;
            }
        }
        self.discard_pending();
        self.refresh_scalars();
        self.params_changed();
        Ok(())
    }

    fn polyak_from(&mut self, source: &dyn Backend, tau: f32) -> Result<(), NnError> {
        if !(0.0..=1.0).contains(&tau) {
            return Err(NnError::InvalidArgument(format!(
                "polyak tau must be in [0, 1], found {tau}"
            )));
        }
        match source.as_any().downcast_ref::<Self>() {
            Some(src) => self.store.polyak_from(&src.store, tau)?,
            None => {
                // Different backend type (e.g. another device): average on the host.
                check_same_meta(self.store.meta(), source.param_meta())?;
                let src = source.parameters();
                for (k, s) in src.iter().enumerate() {
                    let mut mine = self.store.host_value(k);
                    for (a, b) in mine.iter_mut().zip(&s.data) {
                        *a = (1.0 - tau) * *a + tau * b;
                    }
                    self.store.set_host_value(k, &mine);
                }
            }
        }
        self.discard_pending();
        self.refresh_scalars();
        self.params_changed();
        Ok(())
    }

    fn set_reference_kernels(&mut self, on: bool) -> Result<(), NnError> {
        self.set_reference(on)
    }

    fn uses_host_kernels(&self) -> bool {
        self.active_host().is_some()
    }

    fn set_row_reuse(&mut self, on: bool) {
        self.reuse = Some(on);
        self.params_changed();
    }

    fn reused_rows(&self) -> u64 {
        self.host.as_ref().map_or(0, |h| {
            let infer = h.infer.lock().unwrap_or_else(PoisonError::into_inner);
            infer.cache.as_ref().map_or(0, RowCache::reused)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
