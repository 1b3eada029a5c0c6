//! The ResNet-50 parameter list shared by the CPU benchmarks and the GPU example.

/// Element counts of ResNet-50's 161 parameter tensors (torchvision / MXNet `resnet50_v1`
/// layout), 25,557,032 parameters in all:
/// * stem: conv 7×7 3→64 (9,408), BN gamma + beta (64 each);
/// * 16 bottleneck blocks in stages of 3, 4, 6, 3 with widths 64, 128, 256, 512: conv 1×1
///   in→w, conv 3×3 w→w, conv 1×1 w→4w, each followed by a BN gamma + beta (no conv bias);
/// * the first block of each stage has a 1×1 projection in→4w with its BN;
/// * fc: weight 1000×2048 and bias 1000.
///
/// That is 53 convs + 53 × 2 BN vectors + 2 fc tensors = 161 tensors.
pub fn resnet50() -> Vec<usize> {
    let mut sizes = vec![];
    let conv_bn = |sizes: &mut Vec<usize>, cin: usize, cout: usize, k: usize| {
        sizes.extend([cout * cin * k * k, cout, cout]);
    };
    conv_bn(&mut sizes, 3, 64, 7);
    let mut cin = 64;
    for (blocks, width) in [(3, 64), (4, 128), (6, 256), (3, 512)] {
        for block in 0..blocks {
            conv_bn(&mut sizes, cin, width, 1);
            conv_bn(&mut sizes, width, width, 3);
            conv_bn(&mut sizes, width, 4 * width, 1);
            if block == 0 {
                conv_bn(&mut sizes, cin, 4 * width, 1);
            }
            cin = 4 * width;
        }
    }
    sizes.extend([1000 * 2048, 1000]);
    sizes
}
