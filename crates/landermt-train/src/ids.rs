//! Stable parameter ids. Burn draws a random id per parameter, and the optimizer keys its
//! state by id; numbering the trainable parameters in visiting order instead makes a resumed
//! run's parameters meet their saved optimizer state.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Renumbers the parameters that require gradients 1, 2, … in visiting order.
pub fn number<M: Module>(module: M) -> M {
    struct Number(u64);
    impl ModuleMapper for Number {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let t = p.val();
            if !t.is_require_grad() {
                return p;
            }
            self.0 += 1;
            Param::initialized(ParamId::from(self.0), t)
        }
    }
    module.map(&mut Number(0))
}

/// The trainable parameters in visiting order, with their module paths.
pub fn trainable<M: Module>(module: &M) -> Vec<(String, Tensor<2>)> {
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, Tensor<2>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            if t.is_require_grad() {
                let n = t.shape().num_elements();
                let dims = t.dims();
                let rows = if D >= 2 { dims[..D - 1].iter().product() } else { 1 };
                self.out.push((self.path.join("."), t.inner().reshape([rows, n / rows.max(1)])));
            }
        }
    }
    let mut c = Collect { path: Vec::new(), out: Vec::new() };
    module.visit(&mut c);
    c.out
}

/// Replaces the trainable parameters, in visiting order, by `values` (same shapes, as
/// `[rows, cols]` views), keeping their ids and their gradient requirement.
pub fn restore<M: Module>(module: M, values: Vec<Tensor<2>>) -> M {
    struct Restore(std::vec::IntoIter<Tensor<2>>);
    impl ModuleMapper for Restore {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let t = p.val();
            if !t.is_require_grad() {
                return p;
            }
            let v = self.0.next().expect("as many values as trainable parameters");
            let v: Tensor<D> = v.reshape(t.dims()).autodiff().require_grad();
            Param::initialized(p.id, v)
        }
    }
    module.map(&mut Restore(values.into_iter()))
}
