/// The logical type of a dataset column.
public enum ColumnType: String, Codable, Sendable, CaseIterable {
    /// Int64 values.
    case integer
    /// Float64 values.
    case float
    /// Bit-packed values.
    case boolean
    /// Int32 days since 1970-01-01.
    case date
    /// Int64 microseconds since 1970-01-01T00:00:00 (UTC when the text had an offset).
    case datetime
    /// UInt32 codes into a dictionary of strings.
    case categorical
    /// UTF-8 strings as Int64 offsets + bytes.
    case text
}

public struct ValueCount: Codable, Sendable, Equatable {
    public var value: String
    public var count: Int
}

/// Equal-width histogram over [lower, upper] (numpy.histogram semantics: the last bin is closed).
public struct Histogram: Codable, Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var counts: [Int]
}

/// Statistics of one column, from one pass over the data (Note [Profile sketches]).
public struct ColumnProfile: Codable, Sendable {
    public var name: String
    public var type: ColumnType
    /// Non-missing values.
    public var count: Int
    public var missing: Int
    /// Distinct non-missing values; exact when `distinctExact`, else a HyperLogLog estimate.
    public var distinct: Int
    public var distinctExact: Bool
    /// Numeric, date (days) and datetime (µs) columns; `std` is the sample standard deviation.
    public var mean: Double?
    public var std: Double?
    public var min: Double?
    public var q25: Double?
    public var q50: Double?
    public var q75: Double?
    public var max: Double?
    /// Quartiles are exact (numpy linear interpolation) or from the quantile sketch.
    public var quantilesExact: Bool?
    /// Most frequent values, most frequent first; exact counts or Misra-Gries lower bounds.
    public var topValues: [ValueCount]?
    public var topValuesExact: Bool?
    /// Numeric columns: 20 equal-width bins over [min, max].
    public var histogram: Histogram?
}

/// Dataset-level profile.
public struct DatasetProfile: Codable, Sendable {
    public var rows: Int
    public var columns: Int
    /// Size of the CSV file in bytes.
    public var bytes: Int
    /// Rows skipped as malformed (`skipBadRows`).
    public var badRows: Int
    public var columnProfiles: [ColumnProfile]

    public func column(_ name: String) -> ColumnProfile? { columnProfiles.first { $0.name == name } }
}

/// A column whose type the full pass widened beyond what the sample suggested.
public struct Widening: Codable, Sendable, Equatable {
    public var column: String
    public var from: ColumnType
    public var to: ColumnType
    /// How often the widening was forced: the number of chunks in which a value did not fit the
    /// narrower type (each such chunk converts or re-parses once; later values of the chunk are
    /// not counted).
    public var values: Int

    public init(column: String, from: ColumnType, to: ColumnType, values: Int) {
        self.column = column
        self.from = from
        self.to = to
        self.values = values
    }
}
