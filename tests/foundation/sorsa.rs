//! SORSA at initialisation (issue test 2) and the regularizer's gradient against finite
//! differences (issue test 4).

use burn::module::Param;
use burn::tensor::Tensor;
use burn_peft::adapter::regularizer::{self, regularize};
use burn_peft::adapter::{AdaptedGroup, Adapter, AdapterConfig, AdapterInit, Method};
use burn_peft::linalg::{SvdMode, gaussian};

use super::common::*;

fn sorsa_group(w: &faer::Mat<f32>, rank: usize, svd: SvdMode) -> AdaptedGroup<B> {
    let cfg = AdapterConfig::new(Method::Sorsa, rank).with_svd(svd);
    AdaptedGroup::new(vec![linear(w, 0)], &mut AdapterInit::new(cfg).unwrap()).unwrap()
}

#[test]
fn factors_are_orthonormal_and_s_holds_the_top_singular_values() {
    for (name, w) in test_weights() {
        let rank = 4;
        let group = sorsa_group(&w, rank, SvdMode::Exact);
        let Adapter::Sorsa(s) = &group.layers[0].adapter else {
            panic!("not sorsa")
        };
        let eye = Tensor::<B, 2>::eye(rank, &device());
        // A Aᵀ = I and Bᵀ B = I, i.e. aᵀa and b bᵀ in Burn layout.
        let a = s.a.val();
        let b = s.b.val();
        let aat = a.clone().transpose().matmul(a);
        let btb = b.clone().matmul(b.transpose());
        assert!(max_rel_diff(aat, eye.clone()) < 1e-5, "{name}: A Aᵀ != I");
        assert!(max_rel_diff(btb, eye) < 1e-5, "{name}: Bᵀ B != I");

        // Independent check: σ_i = √λ_i of Wᵀ W, computed in f64 by a symmetric eigensolver.
        let w64 = faer::Mat::<f64>::from_fn(w.nrows(), w.ncols(), |i, j| f64::from(w[(i, j)]));
        let gram = w64.transpose() * &w64;
        let mut eig = gram.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
        eig.sort_by(|x, y| y.partial_cmp(x).unwrap());
        let sigma = to_vec(s.s.val());
        for i in 0..rank {
            let want = eig[i].max(0.0).sqrt();
            let rel = (f64::from(sigma[i]) - want).abs() / want;
            assert!(
                rel < 1e-5,
                "{name}: σ_{i} = {} vs √λ = {want} (rel {rel:e})",
                sigma[i]
            );
        }

        let reg = regularizer::regularizer_gradients(&group);
        assert!(
            reg.value() < 1e-4,
            "{name}: regularizer at init {}",
            reg.value()
        );
        for (_, g) in reg.grads {
            let values = to_vec(g);
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{name}: non-finite gradient at init"
            );
        }
    }
}

/// `‖aᵀa − I‖_F + ‖b bᵀ − I‖_F` over `K = 2` factors, in f64 on the host.
fn reg_f64(a: &[f64], in_f: usize, b: &[f64], out_f: usize, r: usize) -> f64 {
    let mut ma = 0.0;
    let mut mb = 0.0;
    for i in 0..r {
        for j in 0..r {
            let delta = if i == j { 1.0 } else { 0.0 };
            let ga: f64 = (0..in_f).map(|k| a[k * r + i] * a[k * r + j]).sum::<f64>() - delta;
            let gb: f64 = (0..out_f)
                .map(|k| b[i * out_f + k] * b[j * out_f + k])
                .sum::<f64>()
                - delta;
            ma += ga * ga;
            mb += gb * gb;
        }
    }
    (ma.sqrt() + mb.sqrt()) / 2.0
}

#[test]
fn regularizer_gradient_matches_central_differences() {
    let (out_f, in_f, r) = (20, 12, 5);
    let w = random_weight(out_f, in_f, 5);
    let mut group = sorsa_group(&w, r, SvdMode::Exact);
    // Perturb A and B away from orthonormality.
    let mut rng = gaussian::rng(77);
    if let Adapter::Sorsa(s) = &mut group.layers[0].adapter {
        let da = gaussian::standard_normal(&mut rng, in_f, r) * faer::Scale(0.2);
        let db = gaussian::standard_normal(&mut rng, r, out_f) * faer::Scale(0.2);
        let perturb = |p: &Param<Tensor<B, 2>>, d: faer::Mat<f32>| {
            let d = burn_peft::linalg::mat_to_tensor::<Inner>(d.as_ref(), &device());
            Param::from_tensor(Tensor::from_inner(p.val().inner() + d))
        };
        s.a = perturb(&s.a, da);
        s.b = perturb(&s.b, db);
    }
    let Adapter::Sorsa(s) = &group.layers[0].adapter else {
        unreachable!()
    };
    let a: Vec<f64> = to_vec(s.a.val()).into_iter().map(f64::from).collect();
    let b: Vec<f64> = to_vec(s.b.val()).into_iter().map(f64::from).collect();
    let value = reg_f64(&a, in_f, &b, out_f, r);

    let reg = regularize(vec![(s.a.id, s.a.val().inner(), s.b.id, s.b.val().inner())]);
    assert!(
        (reg.value() - value).abs() / value < 1e-5,
        "value {} vs f64 {value}",
        reg.value()
    );

    let h = 1e-6;
    let check = |name: &str, analytic: Vec<f32>, x: &[f64], is_a: bool| {
        let mut num = Vec::with_capacity(x.len());
        for k in 0..x.len() {
            let mut plus = x.to_vec();
            let mut minus = x.to_vec();
            plus[k] += h;
            minus[k] -= h;
            let (fp, fm) = if is_a {
                (
                    reg_f64(&plus, in_f, &b, out_f, r),
                    reg_f64(&minus, in_f, &b, out_f, r),
                )
            } else {
                (
                    reg_f64(&a, in_f, &plus, out_f, r),
                    reg_f64(&a, in_f, &minus, out_f, r),
                )
            };
            num.push((fp - fm) / (2.0 * h));
        }
        let err: f64 = num
            .iter()
            .zip(&analytic)
            .map(|(n, a)| (n - f64::from(*a)).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = num.iter().map(|n| n * n).sum::<f64>().sqrt();
        assert!(norm > 1e-3, "{name}: gradient unexpectedly ~0");
        assert!(
            err / norm < 1e-3,
            "{name}: relative gradient error {:e}",
            err / norm
        );
    };
    check("A", to_vec(reg.grads[0].1.clone()), &a, true);
    check("B", to_vec(reg.grads[1].1.clone()), &b, false);
}
