//! The network an experiment declares, as a shape: what the build script generates a dfdx type
//! for and what `runner` looks that type up by. [`Network::of`] checks the limits and that every
//! block gets maps it can reduce; [`Network::key`] names the network; [`Network::rust_type`] is
//! the type the build script writes.

use crate::config::{ModelConfig, Padding};
use std::fmt;

/// Input images: 28x28, one channel; 784 values flat. Outputs: 10 classes.
const IMAGE_SIDE: usize = 28;
const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
const CLASSES: usize = 10;

/// What can be declared.
pub const MAX_HIDDEN_LAYERS: usize = 8;
pub const MAX_WIDTH: usize = 16384;
pub const MAX_BLOCKS: usize = 4;
pub const MAX_FILTERS: usize = 1024;
pub const MAX_KERNEL: usize = 11;

/// One convolution block: convolution (stride 1, zero padding `pad` on each side), ReLU, then
/// a 2x2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub filters: usize,
    pub kernel: usize,
    pub pad: usize,
}

/// A network's shape: everything that decides its dfdx type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// 784 inputs, ReLU hidden layers of these widths, 10 logits.
    Mlp { hidden: Vec<usize> },
    /// Conv blocks on the 28x28 image, then dense ReLU layers and 10 logits.
    Cnn {
        blocks: Vec<Block>,
        hidden: Vec<usize>,
    },
}

fn check_widths(hidden: &[usize]) -> Result<(), String> {
    if hidden.len() > MAX_HIDDEN_LAYERS {
        return Err(format!(
            "key 'model.hidden': {} hidden layers; at most {MAX_HIDDEN_LAYERS} can be declared",
            hidden.len()
        ));
    }
    match hidden.iter().find(|&&w| !(1..=MAX_WIDTH).contains(&w)) {
        Some(w) => Err(format!(
            "key 'model.hidden': width {w} is out of range; each width is 1..={MAX_WIDTH}"
        )),
        None => Ok(()),
    }
}

impl Network {
    /// The network a `[model]` table declares, or why it cannot be built: a limit exceeded, or
    /// a block whose input maps are too small for its kernel and pool.
    pub fn of(model: &ModelConfig) -> Result<Network, String> {
        match model {
            ModelConfig::Mlp { hidden, .. } => {
                check_widths(hidden)?;
                Ok(Network::Mlp {
                    hidden: hidden.clone(),
                })
            }
            ModelConfig::Cnn {
                conv,
                kernel,
                padding,
                hidden,
                ..
            } => {
                if conv.is_empty() || conv.len() > MAX_BLOCKS {
                    return Err(format!(
                        "key 'model.conv': {} blocks; declare 1 to {MAX_BLOCKS}",
                        conv.len()
                    ));
                }
                if let Some(f) = conv.iter().find(|&&f| !(1..=MAX_FILTERS).contains(&f)) {
                    return Err(format!(
                        "key 'model.conv': {f} filters is out of range; each block has \
                         1..={MAX_FILTERS}"
                    ));
                }
                if *kernel > MAX_KERNEL || kernel % 2 == 0 {
                    return Err(format!(
                        "key 'model.kernel': {kernel}; the kernel is odd, 1..={MAX_KERNEL}"
                    ));
                }
                check_widths(hidden)?;
                let pad = match padding {
                    Padding::Same => kernel / 2,
                    Padding::Valid => 0,
                };
                let blocks: Vec<Block> = conv
                    .iter()
                    .map(|&filters| Block {
                        filters,
                        kernel: *kernel,
                        pad,
                    })
                    .collect();
                let mut side = IMAGE_SIDE;
                for (i, b) in blocks.iter().enumerate() {
                    let conv_side = (side + 2 * b.pad + 1).saturating_sub(b.kernel);
                    if conv_side < 2 {
                        return Err(format!(
                            "key 'model.conv': block {} gets {side}x{side} maps, which its \
                             {k}x{k} convolution ({padding}) and 2x2 pool cannot reduce to at \
                             least 1x1; use fewer blocks, a smaller kernel or \"same\" padding",
                            i + 1,
                            k = b.kernel,
                            padding = if b.pad == 0 { "valid" } else { "same" },
                        ));
                    }
                    side = conv_side / 2;
                }
                Ok(Network::Cnn {
                    blocks,
                    hidden: hidden.clone(),
                })
            }
        }
    }

    /// Side length of the maps after every block (CNNs), and the flattened feature count.
    fn features(blocks: &[Block]) -> usize {
        let mut side = IMAGE_SIDE;
        for b in blocks {
            side = (side + 2 * b.pad + 1 - b.kernel) / 2;
        }
        side * side * blocks.last().map_or(1, |b| b.filters)
    }

    /// A short stable name: `mlp[300,100]`, `cnn[32k5p2,64k5p2][1024]`.
    pub fn key(&self) -> String {
        let list = |v: &[usize]| {
            v.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Network::Mlp { hidden } => format!("mlp[{}]", list(hidden)),
            Network::Cnn { blocks, hidden } => {
                let blocks: Vec<String> = blocks
                    .iter()
                    .map(|b| format!("{}k{}p{}", b.filters, b.kernel, b.pad))
                    .collect();
                format!("cnn[{}][{}]", blocks.join(","), list(hidden))
            }
        }
    }

    /// The Rust type of the network, in the names `runner`'s `models` module has in scope
    /// (`Dense`, `FirstBlock`, `Block`, `ReLU`, `ToImage`, `Flatten`). Tuples of more than six
    /// modules (dfdx's limit) nest their tail; up to five, the layout (and so the parameter
    /// names) is what the fixed registry had.
    pub fn rust_type(&self) -> String {
        match self {
            Network::Mlp { hidden } if hidden.is_empty() => {
                format!("Dense<{IMAGE_PIXELS}, {CLASSES}>")
            }
            Network::Mlp { hidden } => tuple(dense_stack(IMAGE_PIXELS, hidden)),
            Network::Cnn { blocks, hidden } => {
                let mut convs = Vec::new();
                let mut channels = 1;
                for (i, b) in blocks.iter().enumerate() {
                    let kind = if i == 0 { "FirstBlock" } else { "Block" };
                    convs.push(format!(
                        "{kind}<{channels}, {}, {}, {}>",
                        b.filters, b.kernel, b.pad
                    ));
                    channels = b.filters;
                }
                let features = Network::features(blocks);
                tuple(vec![
                    "ToImage".into(),
                    one_or_more(convs),
                    format!("Flatten<{features}>"),
                    one_or_more(dense_stack(features, hidden)),
                ])
            }
        }
    }
}

/// Dense ReLU layers from `inputs` through `hidden` to the logits.
fn dense_stack(inputs: usize, hidden: &[usize]) -> Vec<String> {
    let mut modules = Vec::new();
    let mut from = inputs;
    for &w in hidden {
        modules.push(format!("Dense<{from}, {w}>"));
        modules.push("ReLU".into());
        from = w;
    }
    modules.push(format!("Dense<{from}, {CLASSES}>"));
    modules
}

/// A tuple of the modules; past six, the first five and a nested tuple of the rest.
fn tuple(mut modules: Vec<String>) -> String {
    if modules.len() > 6 {
        let rest = modules.split_off(5);
        modules.push(tuple(rest));
    }
    format!("({})", modules.join(", "))
}

/// Like [`tuple`], and a one-element tuple stays a tuple (`(Dense<..>,)`), as the CNN head was.
fn one_or_more(modules: Vec<String>) -> String {
    if modules.len() == 1 {
        format!("({},)", modules[0])
    } else {
        tuple(modules)
    }
}

impl fmt::Display for Network {
    /// As an experiment file's `[model]` would declare it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Mlp { hidden } => write!(f, "kind = \"mlp\", hidden = {hidden:?}"),
            Network::Cnn { blocks, hidden } => {
                let conv: Vec<usize> = blocks.iter().map(|b| b.filters).collect();
                let (k, pad) = (blocks[0].kernel, blocks[0].pad);
                let padding = if pad == 0 && k > 1 { "valid" } else { "same" };
                write!(
                    f,
                    "kind = \"cnn\", conv = {conv:?}, kernel = {k}, padding = \"{padding}\", \
                     hidden = {hidden:?}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Init;

    fn cnn(conv: &[usize], kernel: usize, padding: Padding, hidden: &[usize]) -> ModelConfig {
        ModelConfig::Cnn {
            conv: conv.to_vec(),
            kernel,
            padding,
            hidden: hidden.to_vec(),
            init: Init::Glorot,
        }
    }

    fn mlp(hidden: &[usize]) -> ModelConfig {
        ModelConfig::Mlp {
            hidden: hidden.to_vec(),
            init: Init::Glorot,
        }
    }

    /// The types the fixed registry had, for the networks run directories already exist for.
    #[test]
    fn existing_networks_keep_their_types() {
        let cases = [
            (mlp(&[]), "Dense<784, 10>"),
            (mlp(&[32]), "(Dense<784, 32>, ReLU, Dense<32, 10>)"),
            (
                mlp(&[512, 256]),
                "(Dense<784, 512>, ReLU, Dense<512, 256>, ReLU, Dense<256, 10>)",
            ),
            (
                cnn(&[32, 64], 5, Padding::Same, &[1024]),
                "(ToImage, (FirstBlock<1, 32, 5, 2>, Block<32, 64, 5, 2>), Flatten<3136>, \
                 (Dense<3136, 1024>, ReLU, Dense<1024, 10>))",
            ),
            (
                cnn(&[8], 3, Padding::Valid, &[]),
                "(ToImage, (FirstBlock<1, 8, 3, 0>,), Flatten<1352>, (Dense<1352, 10>,))",
            ),
        ];
        for (model, want) in cases {
            assert_eq!(Network::of(&model).unwrap().rust_type(), want);
        }
    }

    /// LeNet-5: 28 -> conv 5 valid 24 -> pool 12 -> conv 8 -> pool 4: 4 * 4 * 16 features.
    #[test]
    fn lenet_shapes_and_deep_stacks_nest() {
        let lenet = Network::of(&cnn(&[6, 16], 5, Padding::Valid, &[120, 84])).unwrap();
        assert_eq!(
            lenet.rust_type(),
            "(ToImage, (FirstBlock<1, 6, 5, 0>, Block<6, 16, 5, 0>), Flatten<256>, \
             (Dense<256, 120>, ReLU, Dense<120, 84>, ReLU, Dense<84, 10>))"
        );
        assert_eq!(lenet.key(), "cnn[6k5p0,16k5p0][120,84]");
        let deep = Network::of(&mlp(&[8, 7, 6])).unwrap();
        assert_eq!(
            deep.rust_type(),
            "(Dense<784, 8>, ReLU, Dense<8, 7>, ReLU, Dense<7, 6>, (ReLU, Dense<6, 10>))"
        );
    }

    #[test]
    fn limits_and_shapes_that_do_not_reduce_are_errors_naming_the_block() {
        let err = Network::of(&cnn(&[8, 8, 8, 8], 5, Padding::Valid, &[])).unwrap_err();
        assert!(err.contains("block 3") && err.contains("4x4"), "{err}");
        assert!(Network::of(&cnn(&[8, 8, 8, 8], 3, Padding::Same, &[])).is_ok());
        assert!(Network::of(&cnn(&[8, 8, 8, 8, 8], 3, Padding::Same, &[]))
            .unwrap_err()
            .contains("1 to 4"));
        assert!(Network::of(&cnn(&[2000], 3, Padding::Same, &[]))
            .unwrap_err()
            .contains("filters"));
        assert!(Network::of(&cnn(&[8], 13, Padding::Same, &[]))
            .unwrap_err()
            .contains("kernel"));
        assert!(Network::of(&mlp(&[1; 9]))
            .unwrap_err()
            .contains("at most 8"));
        assert!(Network::of(&mlp(&[16385])).unwrap_err().contains("16384"));
        assert!(Network::of(&mlp(&[16384, 1])).is_ok());
    }
}
