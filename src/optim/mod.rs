//! Optimizers whose state the project owns. dfdx keeps its optimizers' moments private, so a run
//! using them could not be checkpointed and resumed exactly; these keep their state in buffers
//! that can be exported and imported, and compute the same updates as dfdx's bit for bit.
//!
//! One file per optimizer, each a [`rule::Rule`]; [`rule_for`] maps a config to its rule (the
//! one place that lists them). See docs/layout.md for adding one.

mod adam;
mod clip;
mod lion;
mod rmsprop;
pub mod rule;
mod sgd;
#[cfg(test)]
mod tests;

use crate::config::OptimizerConfig;
use crate::ops::params::{NamedTensor, Take};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;
use rule::{Decay, Rule};

/// The rule of `cfg` at update `t` (1-based): the registry of optimizers.
fn rule_for(cfg: &OptimizerConfig, t: i32) -> Box<dyn Rule> {
    match *cfg {
        OptimizerConfig::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        }
        | OptimizerConfig::Adamw {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            // AdamW is Adam with its weight decay decoupled from the gradient.
            let decay = match cfg {
                OptimizerConfig::Adamw { .. } => Decay::decoupled(weight_decay, lr),
                _ => Decay::l2(weight_decay),
            };
            Box::new(adam::Adam::new(lr, [beta1, beta2], eps, t, decay))
        }
        OptimizerConfig::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } => Box::new(sgd::Sgd {
            lr: lr as f32,
            momentum: match (momentum > 0.0, nesterov) {
                (false, _) => sgd::Momentum::None,
                (true, false) => sgd::Momentum::Classic(momentum as f32),
                (true, true) => sgd::Momentum::Nesterov(momentum as f32),
            },
            decay: Decay::l2(weight_decay),
        }),
        OptimizerConfig::Rmsprop {
            lr,
            alpha,
            eps,
            momentum,
            centered,
            weight_decay,
        } => Box::new(rmsprop::RmsProp {
            lr: lr as f32,
            alpha: alpha as f32,
            eps: eps as f32,
            momentum: (momentum > 0.0).then_some(momentum as f32),
            centered,
            decay: Decay::l2(weight_decay),
        }),
        OptimizerConfig::Lion {
            lr,
            beta1,
            beta2,
            weight_decay,
        } => Box::new(lion::Lion {
            lr: lr as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            decay: Decay::decoupled(weight_decay, lr),
        }),
    }
}

/// An optimizer over every trainable tensor of a dfdx module.
pub struct Optimizer {
    /// The configuration (with a schedule's current rate): each update builds its rule.
    cfg: OptimizerConfig,
    /// The rule's state slot names.
    slot_names: &'static [&'static str],
    /// Updates applied so far (Adam's `t`).
    steps: u64,
    /// One buffer per parameter per state slot, keyed by the parameter's tensor id.
    slots: Vec<Gradients<f32, Cpu>>,
    /// The largest global L2 norm of the gradients an update uses (`train.clip_grad_norm`).
    max_grad_norm: Option<f64>,
}

impl Optimizer {
    pub fn new(cfg: &OptimizerConfig) -> Self {
        let slot_names = rule_for(cfg, 1).slots();
        let slots = slot_names.iter().map(|_| Gradients::leaky()).collect();
        Optimizer {
            cfg: cfg.clone(),
            slot_names,
            steps: 0,
            slots,
            max_grad_norm: None,
        }
    }

    /// Clips the gradients of every update to a global L2 norm of `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_` does.
    pub fn with_clip_grad_norm(mut self, max_norm: Option<f64>) -> Self {
        self.max_grad_norm = max_norm;
        self
    }

    /// Sets the learning rate of the next updates (a schedule's rate for the coming step); the
    /// configured rate gives back exactly the configured rule.
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.set_lr(lr);
    }

    /// Names of the per-parameter state slots, as used in checkpoints.
    pub fn slot_names(&self) -> &'static [&'static str] {
        self.slot_names
    }

    /// Updates applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of every trainable tensor of `model`, in place and in parallel (through the
    /// patched dfdx's `as_mut_slice`: vendor/dfdx-0.13/RUNNER-PATCH.md). The gradients are used
    /// as scratch space and left zeroed, ready for the next backward pass.
    pub fn update<M: TensorCollection<f32, Cpu>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, Cpu>,
    ) -> Result<(), CpuError> {
        if let Some(max_norm) = self.max_grad_norm {
            clip::clip_grad_norm(model, grads, max_norm)?;
        }
        self.steps += 1;
        let t = i32::try_from(self.steps).unwrap_or(i32::MAX);
        let rule = rule_for(&self.cfg, t);
        let mut visitor = Update {
            opt: self,
            grads,
            rule: &*rule,
            first: t == 1,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut visitor,
        })?;
        Ok(())
    }

    /// The state of every slot of every parameter, named `<parameter>.<slot>`.
    pub fn export<M: TensorCollection<f32, Cpu>>(
        &mut self,
        model: &M,
    ) -> Result<Vec<NamedTensor>, CpuError> {
        let mut visitor = SlotIo {
            names: self.slot_names,
            slots: &mut self.slots,
            action: SlotAction::Export(Vec::new()),
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut visitor,
        })?;
        match visitor.action {
            SlotAction::Export(out) => Ok(out),
            SlotAction::Import(..) => unreachable!(),
        }
    }

    /// Restores state written by [`Optimizer::export`] after `steps` updates. `take` returns the
    /// values of a name given the length it must have, or why it cannot.
    pub fn import<M: TensorCollection<f32, Cpu>>(
        &mut self,
        model: &M,
        steps: u64,
        take: &mut Take,
    ) -> Result<(), String> {
        let mut visitor = SlotIo {
            names: self.slot_names,
            slots: &mut self.slots,
            action: SlotAction::Import(take, None),
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut visitor,
        })
        .map_err(|e| format!("{e:?}"))?;
        if let SlotAction::Import(_, Some(e)) = visitor.action {
            return Err(e);
        }
        self.steps = steps;
        Ok(())
    }
}

enum SlotAction<'a> {
    Export(Vec<NamedTensor>),
    /// The source of values and the first failure.
    Import(&'a mut Take<'a>, Option<String>),
}

/// Reads or writes the state slots of every parameter, by name.
struct SlotIo<'a> {
    names: &'static [&'static str],
    slots: &'a mut Vec<Gradients<f32, Cpu>>,
    action: SlotAction<'a>,
}

impl TensorVisitor<f32, Cpu> for SlotIo<'_> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        (t, name): (&Tensor<S, f32, Cpu>, String),
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        for (slot, state) in self.names.iter().zip(self.slots.iter_mut()) {
            let buf = state.get_or_alloc_mut(t)?;
            let key = format!("{name}.{slot}");
            match &mut self.action {
                SlotAction::Export(out) => out.push(NamedTensor {
                    name: key,
                    shape: t.shape().concrete().into_iter().collect(),
                    data: buf.to_vec(),
                }),
                SlotAction::Import(take, failure) => match take(&key, buf.len()) {
                    Ok(values) => buf.copy_from_slice(&values),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
            }
        }
        Ok(None)
    }
}

struct Update<'a> {
    opt: &'a mut Optimizer,
    grads: &'a mut Gradients<f32, Cpu>,
    rule: &'a dyn Rule,
    /// Whether this is the first update (the rule sets its slots' starting values).
    first: bool,
}

impl TensorVisitor<f32, Cpu> for Update<'_> {
    type Viewer = ViewTensorMut;
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        p: &mut Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let g = self.grads.get_or_alloc_mut(p)?;
        let mut slots = Vec::with_capacity(self.opt.slots.len());
        for slot in self.opt.slots.iter_mut() {
            slots.push(&mut ***slot.get_or_alloc_mut(p)?);
        }
        if self.first {
            self.rule.first_update(&mut slots);
        }
        rule::update(self.rule, p.as_mut_slice(), g, &mut slots);
        Ok(None)
    }
}
