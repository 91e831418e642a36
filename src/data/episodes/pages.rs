//! The episode reader's page decoder: the writer's own data pages (version 1, PLAIN values, RLE
//! levels, no dictionary) decoded without the parquet crate's column reader, which would copy
//! levels and values into buffers of its own first.

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::offset_index::PageLocation;
use parquet::file::serialized_reader::SerializedPageReader;
use std::sync::Arc;

/// A run of whole records of one column chunk, decoded on its own: records `skip..skip + take`
/// of row group `rg`.
pub(super) struct Part {
    pub(super) rg: usize,
    pub(super) skip: usize,
    pub(super) take: usize,
}

/// `flat::levels` without the column reader, for the writer's pages: version-1 data pages of PLAIN
/// values with RLE levels, no dictionary, each starting a record, every value present (all
/// definition levels at the maximum), located by the offset index. Calls `each(rep, values)`
/// per page with its repetition levels and the little-endian bytes of its values; gives the
/// number of levels, or `None` where the column or a page is otherwise (the caller then uses
/// `flat::levels`).
pub(super) fn page_levels(
    file: &Arc<Bytes>,
    pq: &ParquetMetaData,
    c: usize,
    p: &Part,
    mut each: impl FnMut(&[u8], &[u8]) -> Option<()>,
) -> Option<usize> {
    let descr = pq.file_metadata().schema_descr().column(c);
    let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
    let meta = pq.row_group(p.rg);
    let chunk = meta.column(c);
    let locations = pq.page_index_for_row_group(p.rg).page_locations(c)?.clone();
    if chunk.dictionary_page_offset().is_some() || max_rep == 0 || max_def == 0 {
        return None;
    }
    let first = |l: &PageLocation| usize::try_from(l.first_row_index).ok();
    let starts: Vec<usize> = locations.iter().map(first).collect::<Option<_>>()?;
    let (a, b) = (
        starts.partition_point(|&r| r < p.skip),
        starts.partition_point(|&r| r < p.skip + p.take),
    );
    if starts.get(a) != Some(&p.skip) {
        return None;
    }
    let rows = usize::try_from(meta.num_rows()).ok()?;
    let mut pages =
        SerializedPageReader::new(Arc::clone(file), chunk, rows, Some(locations)).ok()?;
    for _ in 0..a {
        pages.skip_next_page().ok()?;
    }
    let bits = |max: i16| 16 - max.leading_zeros();
    let (mut rep, mut def) = (Vec::new(), Vec::new());
    let (mut records, mut levels) = (0, 0);
    for _ in a..b {
        let Some(Page::DataPage {
            buf,
            num_values,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            ..
        }) = pages.get_next_page().ok()?
        else {
            return None;
        };
        let n = num_values as usize;
        let rest = hybrid(&buf, bits(max_rep), n, &mut rep)?;
        let rest = hybrid(rest, bits(max_def), n, &mut def)?;
        let absent = def
            .iter()
            .fold(false, |a, &d| a | (i16::from(d) != max_def));
        if absent || rest.len() != 8 * n || rep.first() != Some(&0) {
            return None;
        }
        each(&rep, rest)?;
        records += rep.iter().filter(|&&r| r == 0).count();
        levels += n;
    }
    (records == p.take).then_some(levels)
}

/// Decodes `n` levels of `bits` bits from a length-prefixed RLE / bit-packed hybrid run into
/// `out`; gives the bytes after the run.
fn hybrid<'a>(data: &'a [u8], bits: u32, n: usize, out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let (run, rest) = (data.get(4..4 + len)?, data.get(4 + len..)?);
    out.clear();
    let mut i = 0;
    while out.len() < n {
        let (mut header, mut shift) = (0u64, 0);
        loop {
            let b = *run.get(i)?;
            i += 1;
            header |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 56 {
                return None;
            }
        }
        let left = n - out.len();
        if header & 1 == 0 {
            let width = bits.div_ceil(8) as usize;
            let mut v = 0u32;
            for (k, &b) in run.get(i..i + width)?.iter().enumerate() {
                v |= u32::from(b) << (8 * k);
            }
            i += width;
            let count = usize::try_from(header >> 1).ok()?;
            out.extend(std::iter::repeat_n(u8::try_from(v).ok()?, count.min(left)));
        } else {
            let groups = usize::try_from(header >> 1).ok()?;
            let bytes = run.get(i..i.checked_add(groups.checked_mul(bits as usize)?)?)?;
            i += bytes.len();
            let mask = (1u16 << bits) - 1;
            out.extend((0..(groups * 8).min(left)).map(|k| {
                let bit = k * bits as usize;
                let lo = u16::from(bytes[bit / 8]);
                let hi = u16::from(bytes.get(bit / 8 + 1).copied().unwrap_or(0));
                (((lo | hi << 8) >> (bit % 8)) & mask) as u8
            }));
        }
    }
    Some(rest)
}
