//! PNG pictures of an attack's preview examples: the clean input, the adversarial
//! input, and the perturbation between them, amplified around mid-grey.
//!
//! Inputs are `[H, W]` or channel-first `[C, H, W]` with C = 1 (grayscale) or 3
//! (RGB). Images are upscaled by an integer factor (nearest neighbour) and never
//! exceed [`MAX_SIDE`] pixels a side.

use anyhow::Context;

/// Which of the three pictures of an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    Original,
    Adversarial,
    /// `0.5 + GAIN * (adversarial - original)`, in units of the value range, clipped.
    Perturbation,
}

impl Picture {
    /// The picture named in a URL (`original`, `adversarial`, `perturbation`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "original" => Some(Self::Original),
            "adversarial" => Some(Self::Adversarial),
            "perturbation" => Some(Self::Perturbation),
            _ => None,
        }
    }
}

/// How much the perturbation picture amplifies the difference.
pub const GAIN: f32 = 5.0;
/// Pictures are upscaled until their longer side reaches about this many pixels.
const TARGET_SIDE: usize = 112;
/// The largest output side, in pixels; larger inputs get no picture.
pub const MAX_SIDE: usize = 1024;

/// The image layout of one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Read an example shape as an image: `[H, W]`, `[1, H, W]` or `[3, H, W]`.
    pub fn of(shape: &[usize]) -> Option<Self> {
        let (channels, height, width) = match *shape {
            [h, w] => (1, h, w),
            [c @ (1 | 3), h, w] => (c, h, w),
            _ => return None,
        };
        let ok = (1..=MAX_SIDE).contains(&height) && (1..=MAX_SIDE).contains(&width);
        ok.then_some(Self {
            channels,
            height,
            width,
        })
    }

    /// The integer upscaling factor (1 to 8).
    pub fn scale(self) -> usize {
        (TARGET_SIDE / self.height.max(self.width))
            .clamp(1, 8)
            .min(MAX_SIDE / self.height.max(self.width))
            .max(1)
    }

    fn len(self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Intensities in [0, 1], channel-first, for `picture` of one example whose values
/// lie in `range`.
pub fn intensities(
    picture: Picture,
    clean: &[f32],
    adversarial: &[f32],
    range: (f32, f32),
) -> Vec<f32> {
    let (lo, hi) = range;
    let span = if hi > lo { hi - lo } else { 1.0 };
    let unit = |v: f32| ((v - lo) / span).clamp(0.0, 1.0);
    match picture {
        Picture::Original => clean.iter().map(|&v| unit(v)).collect(),
        Picture::Adversarial => adversarial.iter().map(|&v| unit(v)).collect(),
        Picture::Perturbation => clean
            .iter()
            .zip(adversarial)
            .map(|(&c, &a)| (0.5 + GAIN * (a - c) / span).clamp(0.0, 1.0))
            .collect(),
    }
}

/// Encode channel-first intensities as an upscaled PNG (8-bit gray or RGB).
pub fn encode(shape: ImageShape, values: &[f32]) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        values.len() == shape.len(),
        "the example holds {} values: expected {} for {:?}",
        values.len(),
        shape.len(),
        shape
    );
    let scale = shape.scale();
    let (out_w, out_h) = (shape.width * scale, shape.height * scale);
    let plane = shape.height * shape.width;
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let mut pixels = Vec::with_capacity(out_w * out_h * shape.channels);
    for y in 0..out_h {
        let row = (y / scale) * shape.width;
        for x in 0..out_w {
            let at = row + x / scale;
            for c in 0..shape.channels {
                pixels.push(byte(values[c * plane + at]));
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, u32::try_from(out_w)?, u32::try_from(out_h)?);
    encoder.set_color(if shape.channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("PNG header")?;
    writer.write_image_data(&pixels).context("PNG data")?;
    writer.finish().context("PNG end")?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_scales() {
        assert_eq!(
            ImageShape::of(&[1, 28, 28]),
            Some(ImageShape {
                channels: 1,
                height: 28,
                width: 28
            })
        );
        assert_eq!(ImageShape::of(&[3, 32, 32]).map(ImageShape::scale), Some(3));
        assert_eq!(ImageShape::of(&[28, 28]).map(ImageShape::scale), Some(4));
        assert_eq!(ImageShape::of(&[224, 224]).map(ImageShape::scale), Some(1));
        assert_eq!(ImageShape::of(&[4, 8, 8]), None);
        assert_eq!(ImageShape::of(&[784]), None);
        assert_eq!(ImageShape::of(&[1, 0, 5]), None);
        assert_eq!(ImageShape::of(&[1, 5000, 5]), None);
        assert_eq!(ImageShape::of(&[2, 2]).map(ImageShape::scale), Some(8));
    }

    #[test]
    fn perturbation_is_amplified_around_grey() {
        let clean = [0.0, 0.5, 1.0, 0.5];
        let adv = [0.05, 0.4, 1.0, 0.6];
        let p = intensities(Picture::Perturbation, &clean, &adv, (0.0, 1.0));
        let expected = [0.75, 0.0, 0.5, 1.0];
        for (got, want) in p.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
        // another value range is normalised first
        let o = intensities(Picture::Original, &[-1.0, 0.0, 1.0], &[0.0; 3], (-1.0, 1.0));
        assert_eq!(o, [0.0, 0.5, 1.0]);
    }

    #[test]
    fn rgb_is_interleaved_and_upscaled() {
        // 3 x 1 x 2: red channel [1, 0], green [0, 1], blue [0, 0]
        let shape = ImageShape::of(&[3, 1, 2]).unwrap();
        let bytes = encode(shape, &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let scale = shape.scale();
        assert_eq!(
            (info.width as usize, info.height as usize),
            (2 * scale, scale)
        );
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..3], &[255, 0, 0]);
        let right = (2 * scale - 1) * 3;
        assert_eq!(&buf[right..right + 3], &[0, 255, 0]);
        assert!(encode(shape, &[0.0; 5]).is_err());
    }
}
