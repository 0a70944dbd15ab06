import Foundation

/// `/api/openapi.json`, generated from the route table (Note [Routes from one table]).
enum OpenAPIDocument {
    static func make(_ specs: [RouteSpec], version: String) -> [String: Any] {
        var paths: [String: [String: Any]] = [:]
        for spec in specs {
            var operation: [String: Any] = [
                "summary": spec.summary,
                "tags": [spec.tag],
                "operationId": operationId(spec),
                "responses": responses(spec),
            ]
            var parameters: [[String: Any]] = spec.parameters.map {
                ["name": $0, "in": "path", "required": true, "schema": ["type": "string"]]
            }
            for (name, description) in spec.query.sorted(by: { $0.key < $1.key }) {
                parameters.append(["name": name, "in": "query", "required": false, "description": description,
                                   "schema": ["type": "string"]])
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            switch spec.access {
            case .public: operation["security"] = [[String: Any]]()
            case .user: operation["security"] = [["bearerAuth": [String]()]]
            case .admin:
                operation["security"] = [["bearerAuth": [String]()]]
                operation["x-nebula-role"] = "admin"
            }
            if let group = spec.group { operation["x-nebula-rate-limit-group"] = group }
            switch spec.body {
            case .json(let schema, let required, let properties):
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": [
                    "title": schema, "type": "object", "required": required,
                    "properties": properties.mapValues { ["type": $0] },
                ]]]]
            case .multipart:
                operation["requestBody"] = ["required": true, "content": ["multipart/form-data": ["schema": [
                    "type": "object", "required": ["file"],
                    "properties": [
                        "file": ["type": "array", "items": ["type": "string", "contentMediaType": "application/octet-stream"]],
                        "name": ["type": "string"], "skip_bad_rows": ["type": "boolean"],
                    ],
                ]]]]
            case nil: break
            }
            paths[spec.path, default: [:]][spec.method.rawValue.lowercased()] = operation
        }
        return [
            "openapi": "3.1.0",
            "info": ["title": "Nebula platform API", "version": version,
                     "description": "Datasets, training jobs, downloads and cluster state of a Nebula coordinator. Errors are {\"error\": {\"code\", \"message\", \"details\"}}."],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearerAuth": ["type": "http", "scheme": "bearer", "bearerFormat": "JWT"]],
                "schemas": ["Error": [
                    "type": "object", "required": ["error"],
                    "properties": ["error": ["type": "object", "required": ["code", "message"], "properties": [
                        "code": ["type": "string"], "message": ["type": "string"],
                        "details": ["type": "object", "additionalProperties": ["type": "string"]],
                    ]]],
                ]],
            ],
        ]
    }

    static func operationId(_ spec: RouteSpec) -> String {
        let words = spec.path.split(separator: "/").filter { $0 != "api" }.map { part -> String in
            let p = part.hasPrefix("{") ? "by-" + part.dropFirst().dropLast() : String(part)
            return p.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
        return spec.method.rawValue.lowercased() + words.joined()
    }

    static func responses(_ spec: RouteSpec) -> [String: Any] {
        let error: [String: Any] = ["content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
        var result: [String: Any] = [:]
        if spec.success == 204 {
            result["204"] = ["description": "done"]
        } else {
            result[String(spec.success)] = ["description": "success", "content": [spec.produces: ["schema": [String: Any]()]]]
        }
        result["default"] = error.merging(["description": "an error (see the error code)"]) { a, _ in a }
        if spec.access != .public { result["401"] = error.merging(["description": "not signed in"]) { a, _ in a } }
        if spec.group != nil { result["429"] = error.merging(["description": "rate limited; see Retry-After"]) { a, _ in a } }
        return result
    }
}
