//! A minimal pickle virtual machine: exactly the opcodes that `torch.save(state_dict)` emits
//! (protocol 2, plus the protocol-4 framing ops), evaluated into a small [`Value`] tree.
//!
//! Nothing is ever imported or executed: `GLOBAL` only records a `module.name` pair, and `REDUCE`
//! understands the three callables a state dict needs (`collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`). Persistent ids
//! (`BINPERSID`) become [`StorageRef`]s naming a storage record of the zip archive.
//!
//! Values are copied, not shared: the memo holds a snapshot of what was stored. torch's state
//! dicts only fetch immutable things (globals, strings, storage tuples) back from the memo, so
//! this never changes their meaning.

use crate::util::limits::{MAX_PICKLE_DEPTH, MAX_PICKLE_UNITS};
use std::fmt;

/// A torch storage named by a persistent id: `('storage', torch.XStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The storage class's name, e.g. `FloatStorage`.
    pub class: String,
    /// The record key: the storage's bytes are `<archive>/data/<key>`.
    pub key: String,
    /// Number of elements in the storage.
    pub numel: usize,
}

/// A tensor as `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes it (all in
/// elements, not bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

/// What the VM can build.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `GLOBAL module name` reference (never resolved).
    Global(String, String),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "'{s}'"),
            Value::Global(m, n) => write!(f, "{m}.{n}"),
            Value::Tensor(t) => write!(f, "tensor{:?}", t.size),
            Value::Dict(_) => f.write_str("dict"),
            Value::List(_) => f.write_str("list"),
            Value::Tuple(_) => f.write_str("tuple"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Anything that stops the VM, with the byte position of the opcode where known.
pub type PickleError = String;

/// The VM: a byte cursor, the stack, the mark positions and the memo, and what the values built
/// so far cost.
struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Value>,
    /// Objects and string bytes copied into or out of the memo so far (each opcode builds at most
    /// one object of its own, so the rest is bounded by the pickle's length).
    copied: usize,
}

/// Evaluates a pickle and returns the object `STOP` leaves on the stack.
pub fn unpickle(data: &[u8]) -> Result<Value, PickleError> {
    let mut vm = Vm {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        copied: 0,
    };
    loop {
        let at = vm.pos;
        let op = vm.take(1)?[0];
        if vm
            .step(op)
            .map_err(|e| format!("pickle opcode 0x{op:02x} at byte {at}: {e}"))?
        {
            return vm.pop();
        }
    }
}

impl Vm<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u8(&mut self) -> Result<usize, PickleError> {
        Ok(self.take(1)?[0] as usize)
    }

    fn u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.arr()?) as usize)
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let s = String::from_utf8(rest[..n].to_vec()).map_err(|_| "line is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes)
            .map(Value::Str)
            .map_err(|_| "string is not UTF-8".into())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".into())
    }

    /// Pops everything above the most recent MARK (and the mark itself).
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or("no MARK on the stack")?;
        if m > self.stack.len() {
            return Err("MARK above the stack top".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&mut self, i: usize) -> Result<Value, PickleError> {
        let v = self
            .memo
            .get(&(i as u32))
            .ok_or_else(|| format!("memo slot {i} is empty"))?;
        let cost = measure(v, 0)?;
        self.charge(cost)?;
        Ok(self.memo[&(i as u32)].clone())
    }

    fn memo_put(&mut self, i: usize) -> Result<(), PickleError> {
        let cost = measure(self.stack.last().ok_or("stack underflow")?, 0)?;
        self.charge(cost)?;
        let v = self.stack.last().ok_or("stack underflow")?.clone();
        self.memo.insert(i as u32, v);
        Ok(())
    }

    /// Counts `cost` copied units against [`MAX_PICKLE_UNITS`], before copying them.
    fn charge(&mut self, cost: usize) -> Result<(), PickleError> {
        self.copied = self.copied.saturating_add(cost);
        if self.copied > MAX_PICKLE_UNITS {
            return Err(format!(
                "the pickle copies more than {MAX_PICKLE_UNITS} objects and string bytes out of \
                 its memo (a state dict copies a few hundred): refused"
            ));
        }
        Ok(())
    }

    /// Executes one opcode; returns `true` at STOP.
    fn step(&mut self, op: u8) -> Result<bool, PickleError> {
        let v = match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is not supported"));
                }
                return Ok(false);
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
                return Ok(false);
            }
            b'.' => return Ok(true),
            b'(' => {
                self.marks.push(self.stack.len());
                return Ok(false);
            }
            b'c' => Value::Global(self.line()?, self.line()?),
            0x93 => match (self.pop()?, self.pop()?) {
                (Value::Str(name), Value::Str(module)) => Value::Global(module, name),
                _ => return Err("STACK_GLOBAL needs two strings".into()),
            },
            b'Q' => Value::Storage(persistent_load(self.pop()?)?),
            b'X' => {
                let n = self.u32()?;
                self.utf8(n)?
            }
            0x8c => {
                let n = self.u8()?;
                self.utf8(n)?
            }
            0x8d => {
                let n = u64::from_le_bytes(self.arr()?) as usize;
                self.utf8(n)?
            }
            b'C' => {
                let n = self.u8()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            b'B' => {
                let n = self.u32()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            b'J' => Value::Int(i32::from_le_bytes(self.arr()?) as i64),
            b'K' => Value::Int(self.u8()? as i64),
            b'M' => Value::Int(u16::from_le_bytes(self.arr()?) as i64),
            0x8a => {
                let n = self.u8()?;
                Value::Int(long1(self.take(n)?)?)
            }
            b'G' => Value::Float(f64::from_be_bytes(self.arr()?)),
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b')' => Value::Tuple(Vec::new()),
            b']' => Value::List(Vec::new()),
            b'}' => Value::Dict(Vec::new()),
            b't' => Value::Tuple(nest(self.pop_mark()?)?),
            b'l' => Value::List(nest(self.pop_mark()?)?),
            b'd' => Value::Dict(pairs(nest(self.pop_mark()?)?)?),
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err("stack underflow".into());
                }
                Value::Tuple(nest(self.stack.split_off(self.stack.len() - n))?)
            }
            b'q' => {
                let i = self.u8()?;
                return self.memo_put(i).map(|_| false);
            }
            b'r' => {
                let i = self.u32()?;
                return self.memo_put(i).map(|_| false);
            }
            0x94 => return self.memo_put(self.memo.len()).map(|_| false),
            b'h' => {
                let i = self.u8()?;
                self.memo_get(i)?
            }
            b'j' => {
                let i = self.u32()?;
                self.memo_get(i)?
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = self.pop()?;
                    vec![self.pop()?, v]
                } else {
                    self.pop_mark()?
                };
                let items = nest(items)?;
                match self.top()? {
                    Value::Dict(d) => d.extend(pairs(items)?),
                    other => return Err(format!("SETITEM(S) on {other}, not a dict")),
                }
                return Ok(false);
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let items = nest(items)?;
                match self.top()? {
                    Value::List(l) => l.extend(items),
                    other => return Err(format!("APPEND(S) on {other}, not a list")),
                }
                return Ok(false);
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                reduce(callable, args)?
            }
            b'b' => {
                // BUILD: an OrderedDict's state is its `_metadata` attribute (module versions),
                // which a state dict's reader does not need.
                let _state = self.pop()?;
                match self.top()? {
                    Value::Dict(_) => return Ok(false),
                    other => return Err(format!("BUILD on {other} is not supported")),
                }
            }
            _ => {
                return Err("unsupported opcode (not one torch.save emits for a state dict)".into())
            }
        };
        self.stack.push(v);
        Ok(false)
    }
}

/// The objects and string bytes of `v`, which sits `depth` levels deep; an error when anything
/// in it lies deeper than [`MAX_PICKLE_DEPTH`]. The recursion stops there, so it cannot overflow
/// the stack.
fn measure(v: &Value, depth: usize) -> Result<usize, PickleError> {
    if depth > MAX_PICKLE_DEPTH {
        return Err(format!(
            "values nested deeper than {MAX_PICKLE_DEPTH} levels (a state dict has 4)"
        ));
    }
    Ok(match v {
        Value::Str(s) => 1 + s.len(),
        Value::Bytes(b) => 1 + b.len(),
        Value::Global(m, n) => 1 + m.len() + n.len(),
        Value::Storage(s) => 1 + s.class.len() + s.key.len(),
        Value::Tensor(t) => 1 + t.storage.class.len() + t.storage.key.len() + 2 * t.size.len(),
        Value::Tuple(items) | Value::List(items) => measure_all(items.iter(), depth)?,
        Value::Dict(pairs) => measure_all(pairs.iter().flat_map(|(k, v)| [k, v]), depth)?,
        Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 1,
    })
}

/// One for a container at `depth` plus what its `items` measure.
fn measure_all<'a>(
    mut items: impl Iterator<Item = &'a Value>,
    depth: usize,
) -> Result<usize, PickleError> {
    items.try_fold(1usize, |a, x| Ok(a.saturating_add(measure(x, depth + 1)?)))
}

/// `items`, once each is known to nest no deeper than the limit as an element of a container.
fn nest(items: Vec<Value>) -> Result<Vec<Value>, PickleError> {
    for x in &items {
        measure(x, 1)?;
    }
    Ok(items)
}

/// LONG1's little-endian two's-complement integer, up to 8 bytes.
fn long1(b: &[u8]) -> Result<i64, PickleError> {
    if b.len() > 8 {
        return Err(format!(
            "LONG1 of {} bytes does not fit in 64 bits",
            b.len()
        ));
    }
    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut buf = [fill; 8];
    buf[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(buf))
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn as_index(v: &Value, what: &str) -> Result<usize, PickleError> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!(
            "{what}: expected a non-negative int, found {other}"
        )),
    }
}

fn as_indices(v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
    match v {
        Value::Tuple(items) | Value::List(items) => {
            items.iter().map(|x| as_index(x, what)).collect()
        }
        other => Err(format!("{what}: expected a tuple, found {other}")),
    }
}

/// `persistent_load` of torch's zip format: `('storage', torch.XStorage, key, location, numel)`.
fn persistent_load(pid: Value) -> Result<StorageRef, PickleError> {
    let Value::Tuple(t) = &pid else {
        return Err(format!("persistent id is {pid}, not a tuple"));
    };
    match t.as_slice() {
        [Value::Str(kind), Value::Global(_, class), Value::Str(key), _location, numel]
            if kind == "storage" =>
        {
            Ok(StorageRef {
                class: class.clone(),
                key: key.clone(),
                numel: as_index(numel, "storage size")?,
            })
        }
        _ => Err(format!("unexpected persistent id {t:?}")),
    }
}

/// The callables a state dict uses; anything else is refused by name.
fn reduce(callable: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Global(module, name) = &callable else {
        return Err(format!("REDUCE on {callable}, not a global"));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("REDUCE arguments are {args}, not a tuple"));
    };
    match (module.as_str(), name.as_str(), args.as_slice()) {
        ("collections", "OrderedDict", []) => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2", [storage, offset, size, stride, ..]) => {
            let Value::Storage(storage) = storage else {
                return Err(format!("_rebuild_tensor_v2 storage is {storage}"));
            };
            let size = as_indices(size, "tensor size")?;
            let stride = as_indices(stride, "tensor stride")?;
            if size.len() != stride.len() {
                return Err(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                ));
            }
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset: as_index(offset, "storage offset")?,
                size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter", [t @ Value::Tensor(_), ..]) => Ok(t.clone()),
        _ => Err(format!(
            "unsupported callable {module}.{name} with {} argument(s)",
            args.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps((1, -2, 300, 2**40, 1.5, 'ab', True, None, [7], {'k': 0}), protocol=P)` as
    /// CPython 3.11 writes it for P = 2 and P = 4 (FRAME, SHORT_BINUNICODE, MEMOIZE).
    const PROTO2: &[u8] = &[
        128, 2, 40, 75, 1, 74, 254, 255, 255, 255, 77, 44, 1, 138, 6, 0, 0, 0, 0, 0, 1, 71, 63,
        248, 0, 0, 0, 0, 0, 0, 88, 2, 0, 0, 0, 97, 98, 113, 0, 136, 78, 93, 113, 1, 75, 7, 97, 125,
        113, 2, 88, 1, 0, 0, 0, 107, 113, 3, 75, 0, 115, 116, 113, 4, 46,
    ];
    const PROTO4: &[u8] = &[
        128, 4, 149, 52, 0, 0, 0, 0, 0, 0, 0, 40, 75, 1, 74, 254, 255, 255, 255, 77, 44, 1, 138, 6,
        0, 0, 0, 0, 0, 1, 71, 63, 248, 0, 0, 0, 0, 0, 0, 140, 2, 97, 98, 148, 136, 78, 93, 148, 75,
        7, 97, 125, 148, 140, 1, 107, 148, 75, 0, 115, 116, 148, 46,
    ];

    #[test]
    fn cpython_pickles_of_small_values_and_containers() {
        let expected = Value::Tuple(vec![
            Value::Int(1),
            Value::Int(-2),
            Value::Int(300),
            Value::Int(1 << 40),
            Value::Float(1.5),
            Value::Str("ab".into()),
            Value::Bool(true),
            Value::None,
            Value::List(vec![Value::Int(7)]),
            Value::Dict(vec![(Value::Str("k".into()), Value::Int(0))]),
        ]);
        assert_eq!(unpickle(PROTO2).unwrap(), expected);
        assert_eq!(unpickle(PROTO4).unwrap(), expected);
    }

    #[test]
    fn unknown_opcode_and_truncation_are_named() {
        let e = unpickle(&[0x80, 2, b'I']).unwrap_err();
        assert!(e.contains("0x49") && e.contains("byte 2"), "{e}");
        let e = unpickle(&[0x80, 2, b'X', 9, 0]).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let e = unpickle(b"cos\nsystem\n)R.").unwrap_err();
        assert!(e.contains("os.system"), "{e}");
    }

    #[test]
    fn long1_sign_extends() {
        assert_eq!(long1(&[0xff]).unwrap(), -1);
        assert_eq!(long1(&[0x00, 0x80]).unwrap(), -32768);
        assert_eq!(long1(&[]).unwrap(), 0);
    }
}
