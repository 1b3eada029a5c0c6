//! One module per optimizer: hyper-parameters (`Default` = MXNet 1.6's defaults) and the
//! [`Rule`](crate::rule::Rule)s of its kernels.

pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod dcasgd;
pub mod ftml;
pub mod ftrl;
pub mod group_adagrad;
pub mod lamb;
pub mod lars;
pub mod lbsgd;
pub mod nadam;
pub mod nag;
pub mod rmsprop;
pub mod sgd;
pub mod sgld;
pub mod signum;
pub mod test_opt;
