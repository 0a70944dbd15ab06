import Foundation
import Logging
import NebulaHTTP
import Testing

/// Makes a ~1.5 MB ZIP (incompressible member + CSV) for the download tests.
func makeDatasetZip(in dir: TempDir) throws -> String {
    let path = dir.file("dataset.zip")
    try runProgram("python3", ["-c", """
        import os, random, sys, zipfile
        random.seed(7)
        with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("data/train.csv", "a,b,label\\n" + "".join("%d,%d,%d\\n" % (i, i * i, i % 2) for i in range(20000)))
            z.writestr("data/blob.bin", bytes(random.getrandbits(8) for _ in range(1200000)))
        """, path])
    return path
}

private let logger: Logger = {
    var logger = Logger(label: "nebula.test.http")
    logger.logLevel = .error
    return logger
}()

@Suite("HTTP client and Kaggle downloads against a local server")
struct HTTPClientTests {
    @Test func kaggleDownloadFollowsRedirectAndMatchesChecksum() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let zip = try makeDatasetZip(in: dir)
        let server = try TestServer(directory: dir, zip: zip)
        defer { server.stop() }

        let kaggle = KaggleClient(credentials: KaggleCredentials(username: "alice", key: "s3cret"), baseURL: server.base,
                                  logger: logger)
        let progress = Box<[(Int64, Int64?)]>([])
        let out = dir.file("out/owner-slug.zip")
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: true)
        let download = try await kaggle.downloadDataset(try KaggleDatasetRef("owner/slug"), to: out) { received, total in
            progress.update { $0.append((received, total)) }
        }

        let size = Int64(try FileManager.default.attributesOfItem(atPath: zip)[.size] as! Int)
        #expect(download.bytes == size)
        #expect(try sha256Hex(ofFile: out) == sha256Hex(ofFile: zip))
        #expect(download.sourceURL.host == "localhost")  // another host: the credentials were not sent there
        #expect(download.sourceURL.path == "/storage/datasets/owner/slug.zip")
        #expect(dir.listing("out") == ["owner-slug.zip"])  // no temporary file left

        let reports = progress.get
        #expect(reports.count > 3)
        #expect(Swift.zip(reports, reports.dropFirst()).allSatisfy { $0.0 <= $1.0 })
        #expect(reports.allSatisfy { $0.1 == size })
        #expect(reports.last?.0 == size)
    }

    @Test func kaggleWrongKeyIsUnauthorizedAndLeavesNoFile() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: try makeDatasetZip(in: dir))
        defer { server.stop() }
        let kaggle = KaggleClient(credentials: KaggleCredentials(username: "alice", key: "wrong"), baseURL: server.base,
                                  logger: logger)
        let out = dir.file("x.zip")
        let error = await #expect(throws: KaggleError.self) {
            try await kaggle.downloadDataset(try KaggleDatasetRef("owner/slug"), to: out)
        }
        #expect(error?.code == .unauthorized)
        #expect(error?.status == 401)
        #expect(error?.message.contains("'alice'") == true)
        #expect(error?.message.contains("Unauthenticated") == true)
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!dir.listing().contains { $0.contains(".part-") })
    }

    @Test(arguments: [("owner/nope", KaggleError.Code.notFound, 404), ("owner/private", .forbidden, 403)])
    func kaggleErrorsByStatus(reference: String, code: KaggleError.Code, status: Int) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: try makeDatasetZip(in: dir))
        defer { server.stop() }
        let kaggle = KaggleClient(credentials: KaggleCredentials(username: "alice", key: "s3cret"), baseURL: server.base,
                                  logger: logger)
        let out = dir.file("x.zip")
        let error = await #expect(throws: KaggleError.self) {
            try await kaggle.downloadDataset(try KaggleDatasetRef(reference), to: out)
        }
        #expect(error?.code == code)
        #expect(error?.status == status)
        #expect(error?.message.contains(reference) == true)
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!dir.listing().contains { $0.contains(".part-") })
    }

    @Test func sendFollowsRedirectsAndCarriesBodyHeadersAndBearer() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        let client = HTTPClient()

        let post = try await client.send(HTTPRequest(method: .post, url: server.url("/echo/x"),
                                                     headers: ["Content-Type": "application/json", "X-Trace": "t-1"],
                                                     body: Data(#"{"n":1}"#.utf8), authorization: .bearer("tok-123")))
        #expect(post.status == 200)
        let echoed = try JSONSerialization.jsonObject(with: post.body) as! [String: Any]
        let headers = echoed["headers"] as! [String: String]
        #expect(echoed["method"] as? String == "POST")
        #expect(echoed["body"] as? String == #"{"n":1}"#)
        #expect(headers["authorization"] == "Bearer tok-123")
        #expect(headers["x-trace"] == "t-1")
        #expect(headers["expect"] == nil)
        #expect(post.headers["content-type"] == "application/json")

        let put = try await client.send(HTTPRequest(method: .put, url: server.url("/echo"), body: Data("abc".utf8),
                                                    authorization: .basic(username: "bob", password: "pw")))
        let putEcho = try JSONSerialization.jsonObject(with: put.body) as! [String: Any]
        #expect(putEcho["method"] as? String == "PUT")
        #expect(putEcho["body"] as? String == "abc")
        #expect((putEcho["headers"] as! [String: String])["authorization"] == "Basic " + Data("bob:pw".utf8).base64EncodedString())

        let emptyPost = try await client.send(HTTPRequest(method: .post, url: server.url("/echo")))
        let emptyEcho = try JSONSerialization.jsonObject(with: emptyPost.body) as! [String: Any]
        #expect((emptyEcho["headers"] as! [String: String])["content-length"] == "0")
        let delete = try await client.send(HTTPRequest(method: .delete, url: server.url("/echo/7")))
        #expect((try JSONSerialization.jsonObject(with: delete.body) as! [String: Any])["method"] as? String == "DELETE")

        let hop = try await client.send(HTTPRequest(url: server.url("/hop")))
        #expect(hop.status == 200)
        #expect(hop.redirectCount == 1)
        #expect(hop.url.absoluteString == server.url("/echo?hopped=1").absoluteString)

        let missing = try await client.send(HTTPRequest(url: server.url("/status?code=418")))
        #expect(missing.status == 418)
        let statusError = #expect(throws: HTTPError.self) { try missing.requireSuccess() }
        #expect(statusError?.code == .httpStatus)
        #expect(statusError?.status == 418)
    }

    @Test func redirectLimitIsEnforced() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.maxRedirects = 3
        let error = await #expect(throws: HTTPError.self) {
            try await HTTPClient(configuration: configuration).send(HTTPRequest(url: server.url("/loop")))
        }
        #expect(error?.code == .tooManyRedirects)
        #expect(error?.message.contains("redirect") == true)
    }

    @Test func timeoutFailsWithCurlMessage() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        // The server holds the headers for an hour and the stall timeout is off: the request can only
        // end because its own timeout fired.
        var configuration = HTTPClient.Configuration()
        configuration.stallTimeout = nil
        let error = await #expect(throws: HTTPError.self) {
            try await HTTPClient(configuration: configuration)
                .send(HTTPRequest(url: server.url("/slow-headers"), timeout: .milliseconds(400)))
        }
        #expect(error?.code == .timeout)
        #expect(error?.curlCode == 28)
        #expect(error?.message.contains("Timeout was reached") == true)
    }

    @Test func cancellingTheTaskAbortsAStalledDownload() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.stallTimeout = nil
        let client = HTTPClient(configuration: configuration)
        let out = dir.file("stalled.bin")
        let started = AsyncStream<Int64>.makeStream()
        let task = Task {
            try await client.download(HTTPRequest(url: server.url("/stall")), to: out) { received, _ in
                started.continuation.yield(received)
            }
        }
        var iterator = started.stream.makeAsyncIterator()
        let first = await iterator.next()
        #expect((first ?? 0) > 0)
        task.cancel()
        // The server holds the rest of the body for an hour, and neither a request nor a stall timeout is
        // set: the transfer can only end because of the cancellation, and must say so.
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!dir.listing().contains { $0.contains(".part-") })
    }

    @Test func alreadyCancelledTaskDoesNotStartTheTransfer() async throws {
        let client = HTTPClient()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.send(HTTPRequest(url: URL(string: "http://127.0.0.1:\(closedPort())/")!))
        }
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test func downloadWithoutContentLengthReportsUnknownTotal() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        let totals = Box<[Int64?]>([])
        let out = dir.file("nolength.bin")
        let response = try await HTTPClient().download(HTTPRequest(url: server.url("/no-length")), to: out) { _, total in
            totals.update { $0.append(total) }
        }
        #expect(response.receivedBytes == 400_000)
        #expect(try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int == 400_000)
        #expect(!totals.get.isEmpty && totals.get.allSatisfy { $0 == nil })
    }

    @Test func downloadOfAnErrorStatusThrowsAndWritesNothing() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        let out = dir.file("missing.bin")
        try Data("old".utf8).write(to: URL(fileURLWithPath: out))
        let error = await #expect(throws: HTTPError.self) {
            try await HTTPClient().download(HTTPRequest(url: server.url("/status?code=503")), to: out)
        }
        #expect(error?.code == .httpStatus)
        #expect(error?.status == 503)
        #expect(error?.message.contains("status 503") == true)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "old")  // the previous file is untouched

        // A large error body is not read past the part kept for the message.
        let large = await #expect(throws: HTTPError.self) {
            try await HTTPClient().download(HTTPRequest(url: server.url("/big-error")), to: out)
        }
        #expect(large?.status == 500)
        #expect(large?.responseBody?.count == 64 * 1024)
        #expect(dir.listing().filter { $0.contains(".part-") }.isEmpty)
    }

    @Test func responseBodyLimitAndConnectionErrors() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.maxResponseBodySize = 100_000
        let client = HTTPClient(configuration: configuration)
        let tooLarge = await #expect(throws: HTTPError.self) { try await client.send(HTTPRequest(url: server.url("/big"))) }
        #expect(tooLarge?.code == .bodyTooLarge)

        let refused = await #expect(throws: HTTPError.self) {
            try await client.send(HTTPRequest(url: URL(string: "http://127.0.0.1:\(closedPort())/")!))
        }
        #expect(refused?.code == .connectionFailed)
        #expect(refused?.message.contains("Couldn't connect") == true)

        let invalid = await #expect(throws: HTTPError.self) {
            try await client.send(HTTPRequest(url: server.url("/echo"), headers: ["X-Bad": "a\r\nInjected: 1"]))
        }
        #expect(invalid?.code == .invalidRequest)
        let scheme = await #expect(throws: HTTPError.self) {
            try await client.send(HTTPRequest(url: URL(string: "file:///etc/passwd")!))
        }
        #expect(scheme?.code == .invalidRequest)
    }

    @Test func concurrentRequestsShareAFewHandles() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer(directory: dir, zip: "/dev/null")
        defer { server.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.maxConcurrentTransfers = 2
        let client = HTTPClient(configuration: configuration)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<16 {
                group.addTask {
                    let response = try await client.send(HTTPRequest(method: .post, url: server.url("/echo/\(i)"),
                                                                     body: Data("\(i)".utf8)))
                    let echo = try JSONSerialization.jsonObject(with: response.body) as! [String: Any]
                    #expect(echo["body"] as? String == "\(i)")
                    return response.status
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 16))
    }

    @Test func tlsPeerIsVerified() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let cert = dir.file("cert.pem"), key = dir.file("key.pem")
        try runProgram("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                   "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        let server = try TestServer(directory: dir, zip: "/dev/null", tls: (cert, key))
        defer { server.stop() }
        let url = URL(string: "https://127.0.0.1:\(server.port)/echo")!

        let untrusted = await #expect(throws: HTTPError.self) { try await HTTPClient().send(HTTPRequest(url: url)) }
        #expect(untrusted?.code == .tls)

        var configuration = HTTPClient.Configuration()
        configuration.caBundlePath = cert
        let trusted = try await HTTPClient(configuration: configuration).send(HTTPRequest(url: url))
        #expect(trusted.status == 200)
    }
}

@Suite("Kaggle credentials")
struct KaggleCredentialTests {
    @Test func missingFileSaysWhereToPutItAndWhichMode() throws {
        let home = try TempDir()
        defer { home.remove() }
        let error = #expect(throws: KaggleError.self) {
            try KaggleCredentials.resolve(environment: ["HOME": home.path])
        }
        #expect(error?.code == .missingCredentials)
        let expected = home.path + "/.kaggle/kaggle.json"
        #expect(error?.message.contains(expected) == true)
        #expect(error?.message.contains("chmod 600") == true)
        #expect(error?.message.contains("KAGGLE_USERNAME") == true)

        let explicit = #expect(throws: KaggleError.self) { try KaggleCredentials.resolve(file: home.file("nope.json")) }
        #expect(explicit?.code == .missingCredentials)
    }

    @Test func resolutionOrderAndValidation() throws {
        let home = try TempDir()
        defer { home.remove() }
        try FileManager.default.createDirectory(atPath: home.file(".kaggle"), withIntermediateDirectories: true)
        let file = home.file(".kaggle/kaggle.json")
        try Data(#"{"username":"filer","key":"k1"}"#.utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o600)

        let fromFile = try KaggleCredentials.resolve(environment: ["HOME": home.path])
        #expect(fromFile.username == "filer" && fromFile.key == "k1" && fromFile.source == .file(file))
        #expect(fromFile.permissionWarning == nil)
        #expect(!"\(fromFile)".contains("k1"))

        let fromEnv = try KaggleCredentials.resolve(environment: ["HOME": home.path, "KAGGLE_USERNAME": "envy", "KAGGLE_KEY": "k2"])
        #expect(fromEnv.username == "envy" && fromEnv.source == .environment)

        try FileManager.default.createDirectory(atPath: home.file("cfg"), withIntermediateDirectories: true)
        try Data(#"{"username":"cfg","key":"k3"}"#.utf8).write(to: URL(fileURLWithPath: home.file("cfg/kaggle.json")))
        chmod(home.file("cfg/kaggle.json"), 0o644)
        let fromConfigDir = try KaggleCredentials.resolve(environment: ["HOME": home.path, "KAGGLE_CONFIG_DIR": home.file("cfg")])
        #expect(fromConfigDir.username == "cfg")
        #expect(fromConfigDir.permissionWarning?.contains("chmod 600") == true)

        let explicit = try KaggleCredentials.resolve(file: file, environment: ["KAGGLE_USERNAME": "envy", "KAGGLE_KEY": "k2"])
        #expect(explicit.username == "filer")

        try Data(#"{"username":"x"}"#.utf8).write(to: URL(fileURLWithPath: home.file("bad.json")))
        #expect(throws: KaggleError.self) { try KaggleCredentials.load(file: home.file("bad.json")) }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: home.file("bad2.json")))
        let malformed = #expect(throws: KaggleError.self) { try KaggleCredentials.load(file: home.file("bad2.json")) }
        #expect(malformed?.code == .invalidCredentialsFile)
        #expect(malformed?.message.contains("bad2.json") == true)
    }

    @Test func datasetReferences() throws {
        let ref = try KaggleDatasetRef("zynicide/wine-reviews")
        #expect(ref.owner == "zynicide" && ref.slug == "wine-reviews")
        #expect(try KaggleDatasetRef("https://www.kaggle.com/datasets/uciml/iris") == KaggleDatasetRef(owner: "uciml", slug: "iris"))
        for bad in ["iris", "a/b/c", "../x", "owner/..", "own er/x", "o/x?y=1", ""] {
            #expect(throws: KaggleError.self, "\(bad)") { try KaggleDatasetRef(bad) }
        }
        let client = KaggleClient(credentials: KaggleCredentials(username: "u", key: "k"),
                                  baseURL: URL(string: "http://127.0.0.1:9")!, logger: Logger(label: "t"))
        #expect(client.downloadURL(for: ref, version: 3).absoluteString
                == "http://127.0.0.1:9/api/v1/datasets/download/zynicide/wine-reviews?datasetVersionNumber=3")
    }
}
