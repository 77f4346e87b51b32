use super::*;

const KINDS: [Activation; 6] = [
    Activation::Relu,
    Activation::LeakyRelu,
    Activation::Gelu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Elu,
];

/// Known values of the definitions (Python's math module in f64: erf, expm1, tanh, exp).
#[test]
fn values_match_the_definitions() {
    let cases = [
        (Activation::Gelu, 1.0, 0.841_344_746_068_542_9),
        (Activation::Gelu, -1.0, -0.158_655_253_931_457_07),
        (Activation::Gelu, 2.5, 2.484_475_836_685_559_7),
        (Activation::Elu, -1.0, -0.632_120_558_828_557_7),
        (Activation::Elu, 0.7, 0.7),
        (Activation::Tanh, 0.5, 0.462_117_157_260_009_74),
        (Activation::Sigmoid, 0.0, 0.5),
        (Activation::Sigmoid, -3.0, 0.047_425_873_177_566_78),
        (Activation::LeakyRelu, -2.0, -0.02),
        (Activation::Relu, -2.0, 0.0),
    ];
    for (kind, x, want) in cases {
        let got = value_and_slope(kind, x).0 as f64;
        assert!(
            (got - want).abs() <= 2e-7 * want.abs().max(1.0),
            "{kind:?}({x}) = {got}, want {want}"
        );
    }
}

/// The slope of every activation against central differences of its value, away from kinks.
#[test]
fn slopes_match_finite_differences() {
    let h = 1e-2f32;
    for kind in KINDS {
        for i in 0..81 {
            let x = -4.0 + 0.1 * i as f32 + 0.013;
            let (_, slope) = value_and_slope(kind, x);
            let (up, down) = (
                value_and_slope(kind, x + h).0,
                value_and_slope(kind, x - h).0,
            );
            if x.abs() < 2.0 * h && kind != Activation::Gelu {
                continue; // the kink at 0
            }
            let fd = (up - down) / (2.0 * h);
            assert!(
                (slope - fd).abs() <= 1e-3,
                "{kind:?}'({x}) = {slope}, differences say {fd}"
            );
        }
    }
}

/// Through the tape: the input gradient of sum(w * act(x)) is w * slope, for every kind.
#[test]
fn taped_gradients_are_weight_times_slope() {
    let dev = Cpu::default();
    let xs: Vec<f32> = (0..40).map(|i| (i as f32 - 19.5) * 0.2).collect();
    let ws: Vec<f32> = (0..40).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    for kind in KINDS {
        let x = dev.tensor_from_vec(xs.clone(), (Const::<4>, Const::<10>));
        let x_id = x.clone();
        let w = dev.tensor_from_vec(ws.clone(), (Const::<4>, Const::<10>));
        let y = activate(x.trace(Gradients::leaky()), kind, None).unwrap();
        let g = (y * w).sum().backward();
        for ((gx, &x), &w) in g.get(&x_id).as_vec().iter().zip(&xs).zip(&ws) {
            let want = w * value_and_slope(kind, x).1;
            assert!((gx - want).abs() <= 1e-6, "{kind:?} at {x}: {gx} vs {want}");
        }
    }
}

/// Inverted dropout: about p of the elements are zeroed, the rest scaled by 1/(1-p); the same
/// (seed, step, layer) gives the same mask, another step or layer another; evaluation (no tape)
/// is the plain activation; the gradient goes through the kept elements, scaled.
#[test]
fn dropout_masks_are_seeded_scaled_and_training_only() {
    let dev = Cpu::default();
    let n = 200_000; // past PARALLEL: the threaded path
    let xs: Vec<f32> = (0..n).map(|i| 1.0 + (i % 13) as f32).collect();
    let drop = Dropout::new(0.3, 7, 12, 1);
    let x = dev.tensor_from_vec(xs.clone(), (n,));
    let x_id = x.clone();
    let y = activate(x.trace(Gradients::leaky()), Activation::Relu, Some(drop)).unwrap();
    let ys = y.as_vec();
    let kept = ys.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.7).abs() < 0.005, "kept {kept}");
    for (i, (&y, &x)) in ys.iter().zip(&xs).enumerate() {
        let want = if drop.keeps(i) { x / 0.7 } else { 0.0 };
        assert_eq!(
            y.to_bits(),
            (if drop.keeps(i) {
                x * (1.0 / (1.0 - 0.3f32))
            } else {
                0.0
            })
            .to_bits()
        );
        assert!((y - want).abs() <= 1e-5 * want.abs());
    }
    let g = y.sum().backward();
    for (i, gx) in g.get(&x_id).as_vec().into_iter().enumerate() {
        assert_eq!(gx, if drop.keeps(i) { drop.scale() } else { 0.0 });
    }
    let again: Vec<bool> = (0..1000)
        .map(|i| Dropout::new(0.3, 7, 12, 1).keeps(i))
        .collect();
    let mine: Vec<bool> = (0..1000).map(|i| drop.keeps(i)).collect();
    assert_eq!(again, mine);
    for other in [
        Dropout::new(0.3, 7, 13, 1),
        Dropout::new(0.3, 7, 12, 2),
        Dropout::new(0.3, 8, 12, 1),
    ] {
        let theirs: Vec<bool> = (0..1000).map(|i| other.keeps(i)).collect();
        assert_ne!(theirs, mine);
    }
    let eval = activate(
        dev.tensor_from_vec(xs.clone(), (n,)),
        Activation::Relu,
        Some(drop),
    )
    .unwrap();
    assert_eq!(eval.as_vec(), xs);
}
