//! GGUF files built by hand, for the reader's tests (`gguf_errors.rs`, `fuzz_readers.rs`).

/// A little-endian GGUF writer for tests.
pub struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

impl Builder {
    /// No metadata, no tensors.
    pub fn new() -> Self {
        Self {
            kv: vec![],
            n_kv: 0,
            infos: vec![],
            n_tensors: 0,
            data: vec![],
        }
    }

    /// Appends a GGUF string (u64 length, bytes) to `buf`.
    pub fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }

    /// Adds a key with a raw type id and value bytes.
    pub fn kv(mut self, key: &str, type_id: u32, value: &[u8]) -> Self {
        Self::string(&mut self.kv, key);
        self.kv.extend(type_id.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    /// Adds a string-valued key.
    pub fn kv_str(self, key: &str, value: &str) -> Self {
        let mut v = vec![];
        Self::string(&mut v, value);
        self.kv(key, 8, &v)
    }

    /// Adds a tensor; `data` is padded to 32 bytes.
    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, data: &[u8]) -> Self {
        Self::string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(type_id.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(data);
        self.data.resize(self.data.len().next_multiple_of(32), 0);
        self.n_tensors += 1;
        self
    }

    /// The file, as GGUF `version`.
    pub fn bytes(&self, version: u32) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend(&self.data);
        out
    }
}
