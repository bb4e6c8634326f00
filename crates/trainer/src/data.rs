//! Training text: the byte-level tokenizer, the 90/10 train/val split, random batches, and
//! the cached download of Tiny Shakespeare.

use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{Device, Tensor};
use rand::Rng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

use crate::TrainError;
use crate::error::TensorContext;
use crate::fsutil;

/// Where Tiny Shakespeare is downloaded from (Karpathy's char-rnn repository).
pub const TINYSHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
/// sha256 of Tiny Shakespeare, lower-case hex.
pub const TINYSHAKESPEARE_SHA256: &str = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";
/// Size of Tiny Shakespeare in bytes.
pub const TINYSHAKESPEARE_BYTES: usize = 1_115_394;
/// File name of Tiny Shakespeare inside the cache directory.
pub const TINYSHAKESPEARE_FILE_NAME: &str = "tinyshakespeare.txt";
/// Environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "TRAINCONSOLE_CACHE_DIR";
/// Largest download accepted, in bytes (the file is about 1.1 MB).
const MAX_DOWNLOAD_BYTES: u64 = 16 * 1024 * 1024;
/// Time allowed to connect to the download server.
const DOWNLOAD_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for the whole download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Byte-level tokenizer: each byte of the UTF-8 text is one token in `0..256`.
pub fn encode(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// Inverse of [`encode`]; byte sequences that are not valid UTF-8 (a sample may cut a character
/// in half or invent bytes) become U+FFFD, so the result is always valid text.
/// Tokens above 255 cannot come from the model (vocabulary 256) and are mapped to U+FFFD too.
pub fn decode(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().map(|&t| u8::try_from(t).unwrap_or(0xFF)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Which part of the corpus to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The first 90 % of the bytes.
    Train,
    /// The last 10 % of the bytes.
    Val,
}

/// A UTF-8 text, tokenized byte by byte and split 90/10 into train and validation parts
/// (as nanoGPT's `shakespeare_char`: `n = 0.9 · len`, first `n` bytes train, the rest val).
#[derive(Debug, Clone)]
pub struct Corpus {
    path: PathBuf,
    sha256: String,
    train: Vec<u8>,
    val: Vec<u8>,
}

impl Corpus {
    /// Read `path` and split it for a model with context length `block_size` (tokens).
    ///
    /// # Errors
    /// * [`TrainError::Io`] if the file cannot be read (missing, unreadable, a directory, a
    ///   device or pipe);
    /// * [`TrainError::EmptyData`] if it is empty;
    /// * [`TrainError::NotUtf8`] with the byte offset of the first invalid byte;
    /// * [`TrainError::DataTooShort`] if either split would hold fewer than `block_size + 1`
    ///   tokens (the message gives the bytes needed and the bytes there are).
    pub fn from_file(path: &Path, block_size: usize) -> Result<Self, TrainError> {
        // A device or pipe (`/dev/zero`, a FIFO) may never end: only regular files are read.
        let metadata = std::fs::metadata(path).map_err(|e| TrainError::io("cannot read training data", path, e))?;
        if !metadata.is_file() {
            let kind = if metadata.is_dir() { "a directory" } else { "not a regular file" };
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("it is {kind}"));
            return Err(TrainError::io("cannot read training data", path, source));
        }
        let bytes = std::fs::read(path).map_err(|e| TrainError::io("cannot read training data", path, e))?;
        Self::from_bytes(bytes, path, block_size)
    }

    /// Like [`Corpus::from_file`] for text already in memory; `path` is only used in messages.
    ///
    /// # Errors
    /// As [`Corpus::from_file`], except for I/O.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path, block_size: usize) -> Result<Self, TrainError> {
        let path = path.to_path_buf();
        if bytes.is_empty() {
            return Err(TrainError::EmptyData { path });
        }
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(TrainError::NotUtf8 { path, offset: e.valid_up_to() });
        }
        let needed_bytes = min_corpus_bytes(block_size);
        if bytes.len() < needed_bytes {
            return Err(TrainError::DataTooShort { path, actual_bytes: bytes.len(), needed_bytes, block_size });
        }
        let sha256 = sha256_hex(&bytes);
        let train_len = train_split_len(bytes.len());
        let mut train = bytes;
        let val = train.split_off(train_len);
        Ok(Self { path, sha256, train, val })
    }

    /// sha256 of the whole text, lower-case hex: identifies the data a checkpoint was trained on.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size of the whole text in bytes.
    pub fn len_bytes(&self) -> usize {
        self.train.len() + self.val.len()
    }

    /// The file the text came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokens (bytes) of one split.
    pub fn tokens(&self, split: Split) -> &[u8] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// A random batch from `split`: `batch_size` windows of `block_size + 1` consecutive tokens,
    /// each starting at a uniformly drawn offset. Returns `(x, y)`, both u32 of shape
    /// `(batch_size, block_size)` on the CPU, where `y` is `x` shifted left by one token
    /// (the next-token targets).
    ///
    /// # Errors
    /// [`TrainError::DataTooShort`] if the split is shorter than `block_size + 1` tokens (only
    /// possible when the corpus was built for a smaller context); [`TrainError::Tensor`] if the
    /// tensors cannot be built.
    pub fn batch(
        &self,
        split: Split,
        batch_size: usize,
        block_size: usize,
        rng: &mut StdRng,
    ) -> Result<(Tensor, Tensor), TrainError> {
        let (x, y) = self.batch_ids(split, batch_size, block_size, rng)?;
        let x = Tensor::from_vec(x, (batch_size, block_size), &Device::Cpu).context("building input batch")?; // (B, T)
        let y = Tensor::from_vec(y, (batch_size, block_size), &Device::Cpu).context("building target batch")?; // (B, T)
        Ok((x, y))
    }

    /// The batch [`Corpus::batch`] draws from the same `rng` state, as flat row-major token ids
    /// `(x, y)`, each `batch_size · block_size` long.
    ///
    /// # Errors
    /// [`TrainError::DataTooShort`] as [`Corpus::batch`].
    pub fn batch_ids(
        &self,
        split: Split,
        batch_size: usize,
        block_size: usize,
        rng: &mut StdRng,
    ) -> Result<(Vec<u32>, Vec<u32>), TrainError> {
        let tokens = self.tokens(split);
        if tokens.len() < block_size + 1 {
            let actual_bytes = self.train.len() + self.val.len();
            let needed_bytes = min_corpus_bytes(block_size);
            return Err(TrainError::DataTooShort { path: self.path.clone(), actual_bytes, needed_bytes, block_size });
        }
        let max_start = tokens.len() - block_size - 1;
        let mut x = Vec::with_capacity(batch_size * block_size);
        let mut y = Vec::with_capacity(batch_size * block_size);
        for _ in 0..batch_size {
            let start = rng.random_range(0..=max_start);
            x.extend(tokens[start..start + block_size].iter().map(|&b| u32::from(b)));
            y.extend(tokens[start + 1..start + block_size + 1].iter().map(|&b| u32::from(b)));
        }
        Ok((x, y))
    }
}

/// Bytes of a corpus of `len` bytes that go to the train split: `floor(0.9 · len)`.
fn train_split_len(len: usize) -> usize {
    len * 9 / 10
}

/// Fewest bytes for which both splits hold `block_size + 1` tokens.
///
/// The val split is the smaller one: `len - floor(0.9 · len) = ceil(len / 10) ≥ block_size + 1`
/// holds exactly when `len ≥ 10 · block_size + 1`; the train split then holds
/// `9 · block_size ≥ block_size + 1` tokens for every `block_size ≥ 1`.
fn min_corpus_bytes(block_size: usize) -> usize {
    10 * block_size + 1
}

/// The directory where downloads are cached: `$TRAINCONSOLE_CACHE_DIR` if set, else the
/// platform cache directory + `trainconsole` (e.g. `~/.cache/trainconsole` on Linux).
///
/// # Errors
/// [`TrainError::NoCacheDir`] when neither exists.
pub fn default_cache_dir() -> Result<PathBuf, TrainError> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir().map(|dir| dir.join("trainconsole")).ok_or(TrainError::NoCacheDir)
}

/// Path of a verified copy of Tiny Shakespeare: `<cache>/tinyshakespeare.txt`, downloaded from
/// [`TINYSHAKESPEARE_URL`] if it is missing or its sha256 is not [`TINYSHAKESPEARE_SHA256`].
/// `cache_dir` defaults to [`default_cache_dir`]. The download is written atomically (temporary
/// file, fsync, rename), so the cache never holds a partial file.
///
/// # Errors
/// * [`TrainError::Download`] if the download fails or its checksum is wrong; the message tells
///   the user to pass `--data FILE` or to put the file at the cache path;
/// * [`TrainError::NoCacheDir`] / [`TrainError::Io`] if the cache directory is unusable.
pub fn tinyshakespeare_path(cache_dir: Option<&Path>) -> Result<PathBuf, TrainError> {
    let cache_dir = match cache_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_cache_dir()?,
    };
    cached_download(&cache_dir.join(TINYSHAKESPEARE_FILE_NAME), TINYSHAKESPEARE_URL)
}

/// Return `path` if its sha256 is Tiny Shakespeare's, else download `url` into it.
fn cached_download(path: &Path, url: &str) -> Result<PathBuf, TrainError> {
    let cached_note = match std::fs::read(path) {
        Ok(bytes) => {
            let sha256 = sha256_hex(&bytes);
            if sha256 == TINYSHAKESPEARE_SHA256 {
                return Ok(path.to_path_buf());
            }
            tracing::warn!(path = %path.display(), %sha256, "cached Tiny Shakespeare has the wrong checksum; downloading again");
            format!(" (the cached copy there has sha256 {sha256})")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TrainError::io("cannot read cached file", path, e)),
    };
    let download_error = |reason: String| TrainError::Download {
        url: url.to_string(),
        reason: reason + &cached_note,
        path: path.to_path_buf(),
        sha256: TINYSHAKESPEARE_SHA256,
    };
    let bytes = download(url).map_err(download_error)?;
    let sha256 = sha256_hex(&bytes);
    if sha256 != TINYSHAKESPEARE_SHA256 {
        return Err(download_error(format!("the downloaded {} bytes have sha256 {sha256}", bytes.len())));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io("cannot create cache directory", dir, e))?;
    let tmp = path.with_extension(format!("download-{}.tmp", std::process::id()));
    fsutil::write_synced(&tmp, &bytes)?;
    fsutil::rename(&tmp, path)?;
    fsutil::sync_dir(dir)?;
    Ok(path.to_path_buf())
}

/// GET `url` into memory, with connect and total timeouts and a size limit.
fn download(url: &str) -> Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(DOWNLOAD_CONNECT_TIMEOUT))
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response.body_mut().with_config().limit(MAX_DOWNLOAD_BYTES).read_to_vec().map_err(|e| e.to_string())
}

/// sha256 of `bytes` as lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::io::{Read, Write};

    fn shakespeare_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt")
    }

    #[test]
    fn tokenizer_round_trips_bytes() {
        assert_eq!(encode("Hé\n"), vec![72, 195, 169, 10]);
        assert_eq!(decode(&[72, 195, 169, 10]), "Hé\n");
        // A cut character becomes U+FFFD instead of invalid text.
        assert_eq!(decode(&[72, 195]), "H\u{FFFD}");
    }

    #[test]
    fn split_is_90_10_and_batches_are_shifted_windows() {
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let corpus = Corpus::from_bytes(text, Path::new("mem.txt"), 8).unwrap();
        assert_eq!(corpus.tokens(Split::Train).len(), 900);
        assert_eq!(corpus.tokens(Split::Val).len(), 100);
        assert_eq!(corpus.tokens(Split::Val)[0], b'a' + (900 % 26) as u8);
        let mut rng = StdRng::seed_from_u64(0);
        let (x, y) = corpus.batch(Split::Train, 3, 8, &mut rng).unwrap();
        assert_eq!(x.dims(), &[3, 8]);
        assert_eq!(y.dims(), &[3, 8]);
        let x = x.to_vec2::<u32>().unwrap();
        let y = y.to_vec2::<u32>().unwrap();
        for (xs, ys) in x.iter().zip(&y) {
            assert_eq!(&xs[1..], &ys[..7]);
            // The alphabet cycles, so every target is the next letter.
            for (a, b) in xs.iter().zip(ys) {
                assert_eq!((a - 97 + 1) % 26, b - 97);
            }
        }
    }

    #[test]
    fn minimal_corpus_is_accepted_and_one_byte_less_is_not() {
        // block_size 8 needs 81 bytes: train 72 ≥ 9, val 9 ≥ 9.
        let corpus = Corpus::from_bytes(vec![b'x'; 81], Path::new("m.txt"), 8).unwrap();
        assert_eq!(corpus.tokens(Split::Val).len(), 9);
        let mut rng = StdRng::seed_from_u64(0);
        corpus.batch(Split::Val, 2, 8, &mut rng).unwrap();
        let err = Corpus::from_bytes(vec![b'x'; 80], Path::new("m.txt"), 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "training data m.txt is too short: 80 bytes, but a 90/10 train/val split with a context \
             of 8 tokens needs at least 81 bytes"
        );
    }

    #[test]
    fn data_file_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        let err = Corpus::from_file(&missing, 8).unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot read training data {}: ", missing.display())), "{err}");

        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, b"").unwrap();
        let err = Corpus::from_file(&empty, 8).unwrap_err().to_string();
        assert_eq!(err, format!("training data {} is empty", empty.display()));

        let binary = dir.path().join("binary.txt");
        std::fs::write(&binary, b"hello \xC3\xA9 w\xFForld").unwrap();
        let err = Corpus::from_file(&binary, 8).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("training data {} is not UTF-8 text: invalid byte at offset 10 (0-based)", binary.display())
        );

        let short = dir.path().join("short.txt");
        std::fs::write(&short, "to be or not to be").unwrap();
        let err = Corpus::from_file(&short, 32).unwrap_err().to_string();
        assert!(err.contains("18 bytes") && err.contains("at least 321 bytes"), "{err}");
    }

    #[test]
    fn shakespeare_loads() {
        let corpus = Corpus::from_file(&shakespeare_path(), 128).unwrap();
        assert_eq!(corpus.tokens(Split::Train).len() + corpus.tokens(Split::Val).len(), TINYSHAKESPEARE_BYTES);
        // floor(0.9 · 1_115_394) = 1_003_854
        assert_eq!(corpus.tokens(Split::Train).len(), 1_003_854);
    }

    #[test]
    fn cache_with_right_checksum_is_used_without_download() {
        let dir = tempfile::tempdir().unwrap();
        let cached = dir.path().join(TINYSHAKESPEARE_FILE_NAME);
        std::fs::copy(shakespeare_path(), &cached).unwrap();
        // The URL is unreachable, so success proves that no download was tried.
        assert_eq!(cached_download(&cached, "http://127.0.0.1:1/input.txt").unwrap(), cached);
        assert_eq!(tinyshakespeare_path(Some(dir.path())).unwrap(), cached);
    }

    #[test]
    fn cache_with_wrong_checksum_is_downloaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let cached = dir.path().join(TINYSHAKESPEARE_FILE_NAME);
        std::fs::write(&cached, "not shakespeare").unwrap();
        let err = cached_download(&cached, "http://127.0.0.1:1/input.txt").unwrap_err().to_string();
        assert!(err.starts_with("cannot download Tiny Shakespeare from http://127.0.0.1:1/input.txt: "), "{err}");
        assert!(err.contains("Pass `--data FILE`"), "{err}");
        assert!(err.contains(&format!("at {}", cached.display())), "{err}");
        assert!(err.contains(&format!("the cached copy there has sha256 {}", sha256_hex(b"not shakespeare"))), "{err}");

        // Served by a local HTTP server, the real text replaces the bad copy.
        let text = std::fs::read(shakespeare_path()).unwrap();
        let url = serve_once(text.clone());
        assert_eq!(cached_download(&cached, &url).unwrap(), cached);
        assert_eq!(std::fs::read(&cached).unwrap(), text);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn download_with_wrong_checksum_is_rejected_and_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cached = dir.path().join(TINYSHAKESPEARE_FILE_NAME);
        let url = serve_once(b"forged".to_vec());
        let err = cached_download(&cached, &url).unwrap_err().to_string();
        assert!(err.contains(&format!("the downloaded 6 bytes have sha256 {}", sha256_hex(b"forged"))), "{err}");
        assert!(!cached.exists());
    }

    /// Serve `body` to one HTTP GET on a local port; returns the URL.
    fn serve_once(body: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/input.txt", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        });
        url
    }
}
