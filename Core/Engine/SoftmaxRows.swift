import Foundation

/// Row-wise softmax of a [rows, classes] logits tensor as Double probabilities (row-major), computed
/// stably (the row maximum is subtracted first). What classifiers report as class probabilities.
public func softmaxRows(_ logits: Tensor) -> [Double] {
    let k = logits.columns
    var out = [Double](repeating: 0, count: logits.count)
    for r in 0..<logits.rows {
        var top = -Double.infinity
        for c in 0..<k { top = max(top, Double(logits[r, c])) }
        var s = 0.0
        for c in 0..<k {
            let e = Foundation.exp(Double(logits[r, c]) - top)
            out[r * k + c] = e
            s += e
        }
        for c in 0..<k { out[r * k + c] /= s }
    }
    return out
}
