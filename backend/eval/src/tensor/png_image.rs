//! PNG images, decoded by the `png` crate into `[C, H, W]` tensors in [0, 1].
//!
//! The dimensions come from the IHDR chunk, which `read_header_info` parses
//! without decoding any pixel data; they are checked against the pixel cap
//! before the image is decoded. Palette and low-bit-depth images are expanded
//! to 8 bits; 16-bit samples keep their precision.

use std::io::Cursor;

use super::{Limits, Tensor, TensorError, check_file_size};

fn malformed(reason: impl Into<String>) -> TensorError {
    TensorError::Malformed {
        format: "PNG",
        reason: reason.into(),
    }
}

fn decode_error(e: png::DecodingError) -> TensorError {
    match e {
        png::DecodingError::LimitsExceeded => {
            malformed("decoding it needs more memory than the limit allows")
        }
        other => malformed(format!("it cannot be decoded ({other})")),
    }
}

/// "4096 x 4096" when the pixel cap is a square, else "N pixels".
fn describe_pixel_limit(max_pixels: u64) -> String {
    let side = max_pixels.isqrt();
    if side * side == max_pixels {
        format!("{side} x {side}")
    } else {
        format!("{max_pixels} pixels")
    }
}

/// Decodes a PNG into a `[C, H, W]` tensor with values in [0, 1]: `C` is 1 for
/// grayscale images and 3 for colour ones. An alpha channel is accepted only
/// when every pixel is fully opaque, and then dropped.
// Long on purpose: the hostile-file checks run in the order the decoder allows
// them (header, limits, frame, alpha), before anything is allocated.
pub fn read_png(bytes: &[u8], limits: &Limits) -> Result<Tensor, TensorError> {
    check_file_size(bytes, limits)?;
    // the decoder's own allocations (row buffers, text chunks) stay bounded too
    let decoder_limits = png::Limits {
        bytes: limits.max_bytes.max(1 << 20),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), decoder_limits);
    let info = decoder.read_header_info().map_err(decode_error)?;
    let (width, height) = (info.width, info.height);
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_png_pixels {
        return Err(TensorError::PngTooLarge {
            width,
            height,
            limit: describe_pixel_limit(limits.max_png_pixels),
        });
    }
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (color, depth) = reader.output_color_type();
    let samples_per_pixel: usize = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(malformed("its palette was not expanded"));
        }
    };
    let bytes_per_sample = match depth {
        png::BitDepth::Eight => 1,
        png::BitDepth::Sixteen => 2,
        other => {
            return Err(malformed(format!(
                "bit depth {other:?} was not expanded to 8 bits"
            )));
        }
    };
    let channels = if samples_per_pixel >= 3 { 3 } else { 1 };
    let (w, h) = (width as usize, height as usize);
    let plane = w * h; // <= max_png_pixels, which fits in memory by construction
    let elements = plane * channels;
    if elements > limits.max_elements {
        return Err(TensorError::TooManyElements {
            shape: super::fmt_shape(&[channels, h, w]),
            elements: elements as u128,
            limit: limits.max_elements,
        });
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| malformed("its decoded size does not fit in memory"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(decode_error)?;
    let line = frame.line_size;
    let max_sample = if bytes_per_sample == 1 {
        255.0
    } else {
        65535.0
    };
    let mut data = vec![0f32; elements];
    for y in 0..h {
        let row = buf
            .get(y * line..y * line + w * samples_per_pixel * bytes_per_sample)
            .ok_or_else(|| malformed("the decoder returned a short frame"))?;
        for x in 0..w {
            let sample = |s: usize| -> u16 {
                let at = (x * samples_per_pixel + s) * bytes_per_sample;
                if bytes_per_sample == 1 {
                    u16::from(row[at])
                } else {
                    u16::from_be_bytes([row[at], row[at + 1]])
                }
            };
            if samples_per_pixel.is_multiple_of(2) {
                let alpha = sample(samples_per_pixel - 1);
                if f32::from(alpha) != max_sample {
                    return Err(malformed(format!(
                        "it has a transparent pixel at x={x}, y={y}: expected an opaque image"
                    )));
                }
            }
            for c in 0..channels {
                data[c * plane + y * w + x] = f32::from(sample(c)) / max_sample;
            }
        }
    }
    Ok(Tensor {
        shape: vec![channels, h, w],
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_limit_wording() {
        assert_eq!(describe_pixel_limit(4096 * 4096), "4096 x 4096");
        assert_eq!(describe_pixel_limit(1000), "1000 pixels");
    }
}
