//! Device-generic parameter storage: values, pending gradients, and the Adam optimizer.
//!
//! Every parameter (weight matrix, bias, learned scalar) is stored as a flat 1-D dfdx tensor
//! plus a host-side shape. Layers view weights as 2-D with a contiguous `reshape_like`, which in
//! dfdx 0.13 keeps the tensor id and shares the buffer, so gradients recorded on the 2-D view land
//! on the flat tensor. Keeping everything 1-D lets Adam, Polyak averaging and (de)serialization be
//! written once for all parameters with plain dfdx tensor ops (`axpy`, `sqrt`, ...), so they run
//! on whatever device `D` is.

use std::collections::HashMap;

use dfdx::shapes::Rank0;
use dfdx::tensor::Tensor;
use dfdx::tensor_ops::{Device as DfdxDevice, SumTo, TryAdd, TryDiv, TryMul};

use crate::error::backend_err;
use crate::{AdamConfig, NamedTensor, NnError, OptimizerState};

/// The dfdx devices a model can run on. (`Model` must be `Send + Sync`; backends state that per
/// device, since dfdx's `Cuda` device is not `Send` by itself: see `device.rs`.)
pub(crate) trait NetDevice: DfdxDevice<f32> {}

impl<D: DfdxDevice<f32>> NetDevice for D {}

/// A flat parameter tensor.
pub(crate) type Flat<D> = Tensor<(usize,), f32, D>;

/// Name, shape and optimizer group of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamMeta {
    pub name: String,
    pub shape: Vec<usize>,
    pub group: usize,
}

impl ParamMeta {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An optimizer parameter group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Group {
    pub name: String,
    pub learning_rate: f32,
    pub steps: u64,
}

/// Parameter values, accumulated gradients and Adam moments on device `D`.
pub(crate) struct ParamStore<D: NetDevice> {
    dev: D,
    meta: Vec<ParamMeta>,
    values: Vec<Flat<D>>,
    /// Accumulated gradients since the last step; `None` means "no backward yet".
    grads: Option<Vec<Flat<D>>>,
    m: Vec<Flat<D>>,
    v: Vec<Flat<D>>,
    groups: Vec<Group>,
    adam: AdamConfig,
}

impl<D: NetDevice> ParamStore<D> {
    /// Builds a store from host values (one per `meta` entry) with a fresh optimizer.
    pub fn new(
        dev: D,
        meta: Vec<ParamMeta>,
        host_values: Vec<Vec<f32>>,
        groups: Vec<Group>,
        adam: AdamConfig,
    ) -> Result<Self, NnError> {
        let values = meta
            .iter()
            .zip(host_values)
            .map(|(p, data)| {
                debug_assert_eq!(p.numel(), data.len());
                dev.try_tensor_from_vec(data, (p.numel(),))
                    .map_err(backend_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut store = Self {
            m: Vec::new(),
            v: Vec::new(),
            dev,
            meta,
            values,
            grads: None,
            groups,
            adam,
        };
        store.reset_optimizer()?;
        Ok(store)
    }

    /// A copy with the same values (fresh tensor ids, so the two never alias in a gradient tape)
    /// and a fresh optimizer: zero moments, zero steps, no pending gradients.
    pub fn clone_fresh(&self) -> Result<Self, NnError> {
        let values = self
            .values
            .iter()
            .map(fresh_copy)
            .collect::<Result<Vec<_>, _>>()?;
        let mut groups = self.groups.clone();
        for g in &mut groups {
            g.steps = 0;
        }
        let mut store = Self {
            dev: self.dev.clone(),
            meta: self.meta.clone(),
            values,
            grads: None,
            m: Vec::new(),
            v: Vec::new(),
            groups,
            adam: self.adam.clone(),
        };
        store.reset_optimizer()?;
        Ok(store)
    }

    fn reset_optimizer(&mut self) -> Result<(), NnError> {
        let zeros = |p: &ParamMeta| self.dev.try_zeros_like(&(p.numel(),)).map_err(backend_err);
        self.m = self.meta.iter().map(zeros).collect::<Result<_, _>>()?;
        self.v = self.meta.iter().map(zeros).collect::<Result<_, _>>()?;
        Ok(())
    }

    pub fn meta(&self) -> &[ParamMeta] {
        &self.meta
    }

    pub fn value(&self, k: usize) -> &Flat<D> {
        &self.values[k]
    }

    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// Host copy of parameter `k`.
    pub fn host_value(&self, k: usize) -> Vec<f32> {
        self.values[k].as_vec()
    }

    /// Overwrites parameter `k` from host data of the right length.
    pub fn set_host_value(&mut self, k: usize, data: &[f32]) {
        debug_assert_eq!(data.len(), self.meta[k].numel());
        self.values[k].copy_from(data);
    }

    /// All parameters as named host tensors.
    pub fn to_named(&self) -> Vec<NamedTensor> {
        named(&self.meta, "", &self.values)
    }

    /// Replaces all parameters by name. Validates everything before changing anything.
    pub fn set_named(&mut self, params: &[NamedTensor]) -> Result<(), NnError> {
        let order = match_named(&self.meta, "", params)?;
        for (k, i) in order.into_iter().enumerate() {
            self.values[k].copy_from(&params[i].data);
        }
        Ok(())
    }

    /// Accumulated gradients as named host tensors (zeros when nothing is pending).
    pub fn gradients_named(&self) -> Vec<NamedTensor> {
        match &self.grads {
            Some(g) => named(&self.meta, "", g),
            None => self
                .meta
                .iter()
                .map(|p| NamedTensor {
                    name: p.name.clone(),
                    shape: p.shape.clone(),
                    data: vec![0.0; p.numel()],
                })
                .collect(),
        }
    }

    /// Whether gradients are pending (a backward since the last step).
    pub fn has_grads(&self) -> bool {
        self.grads.is_some()
    }

    /// [`accumulate`](Self::accumulate) with gradients held as host vectors (one per parameter,
    /// same order as `meta`).
    pub fn accumulate_host(&mut self, grads: &[Vec<f32>]) -> Result<(), NnError> {
        let tensors = grads
            .iter()
            .map(|g| {
                self.dev
                    .try_tensor_from_vec(g.clone(), (g.len(),))
                    .map_err(backend_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.accumulate(tensors)
    }

    /// Adds one gradient per parameter (same order as `meta`) to the pending gradients.
    pub fn accumulate(&mut self, grads: Vec<Flat<D>>) -> Result<(), NnError> {
        debug_assert_eq!(grads.len(), self.values.len());
        match &mut self.grads {
            None => self.grads = Some(grads),
            Some(acc) => {
                for (a, g) in acc.iter_mut().zip(&grads) {
                    a.try_axpy(1.0, g, 1.0).map_err(backend_err)?;
                }
            }
        }
        Ok(())
    }

    /// One Adam step with the pending gradients, which are then cleared. Returns the global L2
    /// norm of the gradients (before weight decay). Without pending gradients this is a no-op
    /// returning 0, like PyTorch's `step()` after `zero_grad(set_to_none=True)`.
    pub fn step(&mut self) -> Result<f32, NnError> {
        let Some(grads) = self.grads.take() else {
            return Ok(0.0);
        };
        // Global gradient norm, reduced on the device (one host read).
        let mut norm_sq: Option<Tensor<Rank0, f32, D>> = None;
        for g in &grads {
            let s = g
                .clone()
                .try_square()
                .and_then(|sq| sq.try_sum::<Rank0, _>())
                .map_err(backend_err)?;
            norm_sq = Some(match norm_sq {
                None => s,
                Some(acc) => acc.try_add(s).map_err(backend_err)?,
            });
        }
        let norm = norm_sq
            .map(|t| t.as_vec().first().copied().unwrap_or(0.0))
            .unwrap_or(0.0)
            .sqrt();
        for group in &mut self.groups {
            group.steps += 1;
        }
        let cfg = self.adam.clone();
        for (k, g) in grads.into_iter().enumerate() {
            let group = &self.groups[self.meta[k].group];
            adam_update(
                &mut self.values[k],
                &mut self.m[k],
                &mut self.v[k],
                g,
                &cfg,
                group.learning_rate,
                group.steps,
            )
            .map_err(backend_err)?;
        }
        Ok(norm)
    }

    /// One Adam step with host gradients (one per parameter, in `meta` order), bitwise the
    /// step that [`accumulate`](Self::accumulate) of the same gradients followed by
    /// [`step`](Self::step) makes, without building gradient tensors or the temporaries of
    /// dfdx's element-wise ops: every element goes through the same `f32` operations in the
    /// same order (see [`adam_update`]), fused into one pass, and the gradient norm sums the
    /// squares in the same order. The host path of [`Device::Cpu`](crate::Device::Cpu) steps
    /// with it; with gradients already pending in the store it adds `grads` to them and
    /// steps as usual.
    pub fn step_host(&mut self, grads: &[Vec<f32>], ws: &mut HostAdam) -> Result<f32, NnError> {
        debug_assert_eq!(grads.len(), self.values.len());
        if self.grads.is_some() {
            self.accumulate_host(grads)?;
            return self.step();
        }
        for group in &mut self.groups {
            group.steps += 1;
        }
        let mut norm_sq: Option<f32> = None;
        for (k, g) in grads.iter().enumerate() {
            let n = self.meta[k].numel();
            debug_assert_eq!(g.len(), n);
            let group = &self.groups[self.meta[k].group];
            let c = AdamCoefs::new(&self.adam, group.learning_rate, group.steps);
            let theta = grow(&mut ws.theta, n);
            let m = grow(&mut ws.m, n);
            let v = grow(&mut ws.v, n);
            self.values[k].copy_into(theta);
            self.m[k].copy_into(m);
            self.v[k].copy_into(v);
            let s = adam_host(theta, m, v, &g[..n], &c);
            norm_sq = Some(norm_sq.map_or(s, |acc| acc + s));
            self.values[k].copy_from(theta);
            self.m[k].copy_from(m);
            self.v[k].copy_from(v);
        }
        Ok(norm_sq.unwrap_or(0.0).sqrt())
    }

    /// Moments and group step counts.
    pub fn optimizer_state(&self) -> OptimizerState {
        let mut tensors = named(&self.meta, "adam.m.", &self.m);
        tensors.extend(named(&self.meta, "adam.v.", &self.v));
        OptimizerState {
            tensors,
            steps: self
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.steps))
                .collect(),
        }
    }

    /// Restores moments and step counts; validates everything before changing anything.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), NnError> {
        // Split the tensors into the m and v sets, then match each set by name.
        let (m_set, v_set): (Vec<NamedTensor>, Vec<NamedTensor>) = state
            .tensors
            .iter()
            .cloned()
            .partition(|t| t.name.starts_with("adam.m."));
        if let Some(bad) = v_set.iter().find(|t| !t.name.starts_with("adam.v.")) {
            return Err(NnError::Parameter {
                name: bad.name.clone(),
                problem: "unknown optimizer tensor (expected `adam.m.<param>` or \
                          `adam.v.<param>`)"
                    .into(),
            });
        }
        let m_order = match_named(&self.meta, "adam.m.", &m_set)?;
        let v_order = match_named(&self.meta, "adam.v.", &v_set)?;
        let mut steps = HashMap::new();
        for (name, s) in &state.steps {
            if !self.groups.iter().any(|g| &g.name == name) {
                return Err(NnError::UnknownGroup {
                    name: name.clone(),
                    valid: self.group_names(),
                });
            }
            if steps.insert(name.as_str(), *s).is_some() {
                return Err(NnError::InvalidArgument(format!(
                    "optimizer state lists the step count of group `{name}` twice"
                )));
            }
        }
        if let Some(g) = self
            .groups
            .iter()
            .find(|g| !steps.contains_key(g.name.as_str()))
        {
            return Err(NnError::InvalidArgument(format!(
                "optimizer state lacks the step count of group `{}`",
                g.name
            )));
        }
        for (k, i) in m_order.into_iter().enumerate() {
            self.m[k].copy_from(&m_set[i].data);
        }
        for (k, i) in v_order.into_iter().enumerate() {
            self.v[k].copy_from(&v_set[i].data);
        }
        for g in &mut self.groups {
            g.steps = steps[g.name.as_str()];
        }
        Ok(())
    }

    /// Checks that `other` has the same parameter names and shapes.
    pub fn check_compatible(&self, other: &ParamStore<D>) -> Result<(), NnError> {
        check_same_meta(&self.meta, &other.meta)
    }

    /// Hard copy of `source`'s values (fresh tensor ids; the optimizer state is kept).
    pub fn copy_values_from(&mut self, source: &ParamStore<D>) -> Result<(), NnError> {
        self.check_compatible(source)?;
        for (dst, src) in self.values.iter_mut().zip(&source.values) {
            *dst = fresh_copy(src)?;
        }
        Ok(())
    }

    /// `theta = (1 - tau) * theta + tau * theta_source`, in place on the device.
    pub fn polyak_from(&mut self, source: &ParamStore<D>, tau: f32) -> Result<(), NnError> {
        self.check_compatible(source)?;
        let tau = widen(tau);
        let keep = 1.0 - tau;
        for (dst, src) in self.values.iter_mut().zip(&source.values) {
            dst.try_axpy(keep, src, tau).map_err(backend_err)?;
        }
        Ok(())
    }
}

/// An exact copy of `t` with a new tensor id (`x * 1` is exact for every float, NaN included).
fn fresh_copy<D: NetDevice>(t: &Flat<D>) -> Result<Flat<D>, NnError> {
    t.clone().try_mul(1.0f32).map_err(backend_err)
}

/// One Adam update of a single parameter tensor; see [`AdamConfig`] for the formula.
fn adam_update<D: NetDevice>(
    theta: &mut Flat<D>,
    m: &mut Flat<D>,
    v: &mut Flat<D>,
    mut g: Flat<D>,
    cfg: &AdamConfig,
    learning_rate: f32,
    t: u64,
) -> Result<(), D::Err> {
    let b1 = widen(cfg.beta1);
    let b2 = widen(cfg.beta2);
    if cfg.weight_decay != 0.0 {
        g.try_axpy(1.0, theta, widen(cfg.weight_decay))?;
    }
    m.try_axpy(b1, &g, 1.0 - b1)?;
    let g2 = g.try_square()?;
    v.try_axpy(b2, &g2, 1.0 - b2)?;
    // Bias corrections in f64; t is at most ~1e9 in practice, powi wants i32.
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let denom = v
        .clone()
        .try_div(bc2 as f32)?
        .try_sqrt()?
        .try_add(cfg.eps)?;
    let update = m.clone().try_div(bc1 as f32)?.try_div(denom)?;
    theta.try_axpy(1.0, &update, -widen(learning_rate))
}

/// Reusable host buffers of [`ParamStore::step_host`].
#[derive(Debug, Default)]
pub(crate) struct HostAdam {
    theta: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// The first `len` values of `buf`, grown when shorter.
fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The `f32` constants of one parameter's Adam update, converted as [`adam_update`] converts
/// them for dfdx (`axpy` takes `f64` coefficients and rounds them to `f32`; the bias corrections
/// are `f64`, rounded to `f32` by the scalar divisions).
#[derive(Clone, Copy, Debug)]
struct AdamCoefs {
    weight_decay: Option<f32>,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    eps: f32,
    neg_learning_rate: f32,
}

impl AdamCoefs {
    #[allow(clippy::cast_possible_truncation)]
    fn new(cfg: &AdamConfig, learning_rate: f32, t: u64) -> Self {
        let b1 = widen(cfg.beta1);
        let b2 = widen(cfg.beta2);
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        Self {
            weight_decay: (cfg.weight_decay != 0.0).then(|| widen(cfg.weight_decay) as f32),
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            bias_correction1: (1.0 - b1.powi(t)) as f32,
            bias_correction2: (1.0 - b2.powi(t)) as f32,
            eps: cfg.eps,
            neg_learning_rate: (-widen(learning_rate)) as f32,
        }
    }
}

/// One parameter's Adam update on host slices, element by element the operations of
/// [`adam_update`] (each dfdx op rounds to `f32`; `x * 1.0` is kept where dfdx's `axpy` has it,
/// although it is exact). Returns the sum of the squared gradients (before weight decay) in
/// element order from 0, as dfdx's `square` then `sum` computes it.
fn adam_host(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &AdamCoefs) -> f32 {
    // The sum is a serial chain (its order is fixed); the update of a chunk is independent
    // work that the CPU overlaps with it, and that the compiler vectorizes.
    const CHUNK: usize = 64;
    let mut sum = 0.0f32;
    for (((theta, m), v), g) in theta
        .chunks_mut(CHUNK)
        .zip(m.chunks_mut(CHUNK))
        .zip(v.chunks_mut(CHUNK))
        .zip(g.chunks(CHUNK))
    {
        for &x in g {
            sum += x * x;
        }
        for (((theta, m), v), &g) in theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            let g = match c.weight_decay {
                Some(wd) => g * 1.0 + *theta * wd,
                None => g,
            };
            *m = *m * c.beta1 + g * c.one_minus_beta1;
            *v = *v * c.beta2 + (g * g) * c.one_minus_beta2;
            let denom = (*v / c.bias_correction2).sqrt() + c.eps;
            let update = (*m / c.bias_correction1) / denom;
            *theta = *theta * 1.0 + update * c.neg_learning_rate;
        }
    }
    sum
}

/// Widens an `f32` hyper-parameter to the `f64` of its shortest decimal form, so that `0.999`
/// means 0.999 (as in PyTorch, whose hyper-parameters are Python floats) and not
/// 0.99900001287..., which would make `1 - beta2` off by 1.3e-5 relative.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Host copies of `tensors` named `<prefix><param name>`.
fn named<D: NetDevice>(meta: &[ParamMeta], prefix: &str, tensors: &[Flat<D>]) -> Vec<NamedTensor> {
    meta.iter()
        .zip(tensors)
        .map(|(p, t)| NamedTensor {
            name: format!("{prefix}{}", p.name),
            shape: p.shape.clone(),
            data: t.as_vec(),
        })
        .collect()
}

/// For each parameter (in `meta` order), the index in `given` of the tensor named
/// `<prefix><param name>`. Errors on a missing, duplicate, unknown or mis-shaped tensor.
pub(crate) fn match_named(
    meta: &[ParamMeta],
    prefix: &str,
    given: &[NamedTensor],
) -> Result<Vec<usize>, NnError> {
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(given.len());
    for (i, t) in given.iter().enumerate() {
        if by_name.insert(t.name.as_str(), i).is_some() {
            return Err(NnError::Parameter {
                name: t.name.clone(),
                problem: "given twice".into(),
            });
        }
    }
    let mut order = Vec::with_capacity(meta.len());
    for p in meta {
        let full = format!("{prefix}{}", p.name);
        let Some(&i) = by_name.get(full.as_str()) else {
            return Err(NnError::Parameter {
                name: full,
                problem: format!("missing (expected shape {:?})", p.shape),
            });
        };
        let t = &given[i];
        if t.shape != p.shape {
            return Err(NnError::Shape {
                what: format!("parameter `{full}`"),
                expected: format!("{:?}", p.shape),
                found: format!("{:?}", t.shape),
            });
        }
        if t.data.len() != p.numel() {
            return Err(NnError::Shape {
                what: format!("data of parameter `{full}`"),
                expected: format!("{} values", p.numel()),
                found: format!("{} values", t.data.len()),
            });
        }
        order.push(i);
    }
    if given.len() != meta.len() {
        let known: std::collections::HashSet<String> =
            meta.iter().map(|p| format!("{prefix}{}", p.name)).collect();
        if let Some(extra) = given.iter().find(|t| !known.contains(&t.name)) {
            return Err(NnError::Parameter {
                name: extra.name.clone(),
                problem: "not a parameter of this model".into(),
            });
        }
    }
    Ok(order)
}

/// Errors unless both parameter lists have the same names and shapes.
pub(crate) fn check_same_meta(a: &[ParamMeta], b: &[ParamMeta]) -> Result<(), NnError> {
    let describe = |m: &[ParamMeta]| {
        m.iter()
            .map(|p| format!("{}{:?}", p.name, p.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.shape == y.shape);
    if same {
        Ok(())
    } else {
        Err(NnError::Incompatible(format!(
            "expected parameters [{}], found [{}]",
            describe(a),
            describe(b)
        )))
    }
}
