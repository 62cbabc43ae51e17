//! A bottleneck adapter after the FFN (Houlsby et al. 2019): `y + up(relu(down(y)))`. `up`
//! starts at zero, so a fresh adapter leaves the model exactly as it was.

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Adapter {
    /// `[hidden, size]`
    pub down: Param<Tensor<2>>,
    /// `[size, hidden]`, zeros at the start.
    pub up: Param<Tensor<2>>,
}

impl Adapter {
    /// `down` is drawn uniformly in ±1/√hidden from `values` (host numbers in [0, 1), so the
    /// caller controls the seed); `up` is zero.
    pub fn new(hidden: usize, size: usize, values: impl Iterator<Item = f32>, device: &Device) -> Self {
        let bound = 1.0 / (hidden as f32).sqrt();
        let down: Vec<f32> = values.take(hidden * size).map(|u| (2.0 * u - 1.0) * bound).collect();
        Self { down: Param::from_tensor(Tensor::from_data(TensorData::new(down, [hidden, size]), device)), up: Param::from_tensor(Tensor::zeros([size, hidden], device)) }
    }

    pub fn forward(&self, y: Tensor<3>) -> Tensor<3> {
        let [b, t, h] = y.dims();
        let z = relu(y.clone().reshape([b * t, h]).matmul(self.down.val())).matmul(self.up.val());
        y + z.reshape([b, t, h])
    }
}
