//! One module per optimizer: hyper-parameters (`Default` = MXNet 1.6's defaults) and the
//! [`Rule`](crate::rule::Rule)s of its kernels.

pub mod adam;
pub mod lamb;
pub mod lars;
pub mod nag;
pub mod sgd;
