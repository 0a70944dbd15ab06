import NebulaEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Linear models")
struct LinearModelTests {
    /// 200 rows of three uniform features and y = 2·x₀ − 3·x₁ + 0.5·x₂ + 4 (exact, in Double).
    static func exactLinearData() -> (x: Tensor, y: [Double]) {
        var rng = SeededGenerator(seed: 11)
        let x = Tensor(shape: [200, 3], storage: (0..<600).map { j in rng.uniform(1) * Float(1 + j % 3) + Float(j % 3) })
        let y = (0..<200).map { i in
            2 * Double(x[i, 0]) - 3 * Double(x[i, 1]) + 0.5 * Double(x[i, 2]) + 4
        }
        return (x, y)
    }

    @Test func closedFormRecoversCoefficients() {
        let (x, y) = Self.exactLinearData()
        let model = LinearRegression.fit(x: x, y: y)
        for (c, truth) in zip(model.coefficients, [2.0, -3.0, 0.5]) { #expect(abs(c - truth) < 1e-8, "\(model.coefficients)") }
        #expect(abs(model.intercept - 4) < 1e-8)
        #expect(Metrics.rootMeanSquaredError(y, model.predict(x)) < 1e-8)
    }

    @Test func constantAndDuplicatedColumnsStaySolvable() {
        let (x, y) = Self.exactLinearData()
        // Append a constant column and a copy of column 0: XᵀX is singular without the tiny ridge.
        var storage: [Float] = []
        for i in 0..<200 { storage += [x[i, 0], x[i, 1], x[i, 2], 7, x[i, 0]] }
        let wide = Tensor(shape: [200, 5], storage: storage)
        let model = LinearRegression.fit(x: wide, y: y)
        #expect(model.coefficients.allSatisfy { $0.isFinite })
        #expect(abs(model.coefficients[3]) < 1e-12)
        #expect(abs(model.coefficients[0] + model.coefficients[4] - 2) < 1e-6)
        #expect(Metrics.rootMeanSquaredError(y, model.predict(wide)) < 1e-6)
    }

    @Test func ridgeShrinksTowardsTheMean() {
        let (x, y) = Self.exactLinearData()
        let model = LinearRegression.fit(x: x, y: y, alpha: 1e9)
        #expect(model.coefficients.allSatisfy { abs($0) < 1e-4 })
        #expect(abs(model.intercept - y.reduce(0, +) / 200) < 1e-3)
    }

    @Test func minibatchSGDConverges() {
        let (x, y) = Self.exactLinearData()
        var options = LinearRegression.SGDOptions()
        options.epochs = 60
        let model = LinearRegression.fitSGD(x: x, y: y, options: options)
        for (c, truth) in zip(model.coefficients, [2.0, -3.0, 0.5]) { #expect(abs(c - truth) < 1e-3, "\(model.coefficients)") }
        #expect(abs(model.intercept - 4) < 1e-2)
        // Deterministic for a seed.
        #expect(LinearRegression.fitSGD(x: x, y: y, options: options) == model)
    }

    /// Reference: Newton's method in numpy on the same objective (standardised features, C = 1, converged to
    /// a gradient of 1e-17), coefficients mapped back to the raw features.
    @Test func logisticRegressionMatchesNewtonReference() {
        let n = 120
        var storage: [Float] = [], labels: [Int] = []
        for i in 0..<n {
            let a = sin(0.37 * Double(i)) * 2 + 1, b = cos(0.11 * Double(i)) * 5, c = Double(i % 7) - 3
            storage += [Float(a), Float(b), Float(c)]
            labels.append(a - 0.3 * b + 0.5 * c + 0.8 * sin(1.3 * Double(i)) > 0.5 ? 1 : 0)
        }
        let x = Tensor(shape: [n, 3], storage: storage)
        var options = LinearClassifierOptions()
        options.gradientTolerance = 1e-10
        let model = LogisticRegression.fit(x: x, labels: labels, options: options)
        print("logistic: \(model.iterations) iterations, converged \(model.converged)")
        #expect(model.converged)
        let reference = [1.671057979414022, -0.5449514591514789, 0.6230796939312506]
        for (c, r) in zip(model.coefficients, reference) { #expect(abs(c - r) < 1e-6, "\(model.coefficients)") }
        #expect(abs(model.intercept - -0.9219703688411777) < 1e-6)
        let p = model.predictProbabilities(x)
        #expect(zip(model.predict(x), p).allSatisfy { $0 == ($1 > 0.5 ? 1 : 0) })
    }

    /// Reference: Newton's method in numpy for the multinomial objective on all 150 iris rows (C = 1),
    /// intercepts centred (the objective does not see a common shift; L-BFGS from zero keeps their sum 0).
    @Test func softmaxRegressionMatchesNewtonReferenceOnIris() throws {
        let iris = try TabularTestData.load("sklearn_iris")
        var options = LinearClassifierOptions()
        options.gradientTolerance = 1e-10
        let model = SoftmaxRegression.fit(x: iris.x, labels: iris.labels, classes: 3, options: options)
        print("softmax iris: \(model.iterations) iterations, converged \(model.converged)")
        #expect(model.converged)
        let reference = [-1.3014230624603005, 0.7122370944966631, 0.5891859679636341, 2.670547382624019,
                         -0.8329453261109478, -1.8376020565130728, -1.0973556007541339, -0.20656484942456294,
                         1.3039204501786978, -2.3845910112529825, -1.0876365817125275, 3.472227592965508]
        for (c, r) in zip(model.coefficients, reference) { #expect(abs(c - r) < 1e-6, "\(model.coefficients)") }
        let mean = model.intercepts.reduce(0, +) / 3
        for (b, r) in zip(model.intercepts, [6.218435809748554, 2.5403021000927897, -8.758737909841344]) {
            #expect(abs(b - mean - r) < 1e-6, "\(model.intercepts)")
        }
        #expect(abs(Metrics.accuracy(iris.labels, model.predict(iris.x)) - 0.9733333333333334) < 1e-12)
        let p0 = Array(model.predictProbabilities(iris.x).prefix(3))
        #expect(abs(p0[0] - 0.9846955611197842) < 1e-6 && abs(p0[2] - 6.201661586736614e-08) < 1e-9)
    }

    // MARK: Held-out scores (split of TabularTestData.split; BASELINES.md used scikit-learn's split)

    @Test(arguments: [false, true]) func linearModelsOnHeldOutData(sklearnSplit: Bool) throws {
        let wine = TabularTestData.trainTest(try TabularTestData.load("sklearn_wine"), sklearn: sklearnSplit)
        let wineModel = SoftmaxRegression.fit(x: wine.train.x, labels: wine.train.labels, classes: 3)
        let wineAccuracy = Metrics.accuracy(wine.test.labels, wineModel.predict(wine.test.x))
        let iris = TabularTestData.trainTest(try TabularTestData.load("sklearn_iris"), sklearn: sklearnSplit)
        let irisModel = SoftmaxRegression.fit(x: iris.train.x, labels: iris.train.labels, classes: 3)
        let irisAccuracy = Metrics.accuracy(iris.test.labels, irisModel.predict(iris.test.x))
        let diabetes = TabularTestData.trainTest(try TabularTestData.load("sklearn_diabetes"), sklearn: sklearnSplit)
        let ols = LinearRegression.fit(x: diabetes.train.x, y: diabetes.train.targets)
        let predicted = ols.predict(diabetes.test.x)
        let rmse = Metrics.rootMeanSquaredError(diabetes.test.targets, predicted)
        print("linear (\(sklearnSplit ? "scikit-learn's" : "our") split): wine acc \(wineAccuracy), iris acc \(irisAccuracy), diabetes RMSE \(rmse) R² \(Metrics.r2(diabetes.test.targets, predicted))")
        // BASELINES.md (scikit-learn's split): LogReg wine 1.000, iris 1.000, Ridge diabetes RMSE 58.6.
        #expect(wineAccuracy >= 0.97)
        #expect(irisAccuracy >= 0.96)
        #expect(rmse <= 58.6 * 1.05)
    }
}
