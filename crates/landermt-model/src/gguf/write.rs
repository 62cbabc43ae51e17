//! GGUF headers written from parts: the GGUF export's files (`export::gguf`), and for tests and
//! fuzzing seeds files that are valid, or damaged in exactly one place.

/// A GGUF version 3 header: the magic, the counts, then `kv` (each key, its value type id, its
/// value's bytes) and `tensors` (each name, dims, ggml type id, data offset). The caller appends
/// the padding and the data.
pub fn header(kv: &[(&str, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>, u32, u64)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kv.len() as u64).to_le_bytes());
    for (key, ty, value) in kv {
        out.extend(string(key));
        out.extend(ty.to_le_bytes());
        out.extend(value);
    }
    for (name, dims, ty, offset) in tensors {
        out.extend(string(name));
        out.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
    }
    out
}

/// A GGUF string: its length as a u64, then its UTF-8 bytes.
pub fn string(text: &str) -> Vec<u8> {
    [(text.len() as u64).to_le_bytes().as_slice(), text.as_bytes()].concat()
}

/// A GGUF array of strings (value type 9, element type 8).
pub fn string_array(items: &[&str]) -> Vec<u8> {
    let mut out = [8u32.to_le_bytes().as_slice(), (items.len() as u64).to_le_bytes().as_slice()].concat();
    items.iter().for_each(|s| out.extend(string(s)));
    out
}
