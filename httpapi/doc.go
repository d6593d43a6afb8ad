// Package httpapi is durable's HTTP management API, compatible with the
// one Durable Functions serves under /runtime/webhooks/durabletask: start
// orchestrations, read their status (with history), list and purge them,
// raise events, terminate, suspend, resume and restart them, and signal,
// read and list entities. It uses net/http alone and speaks JSON, so the
// engine's converter must be the default JSON one.
//
// Routes, under Config.BasePath:
//
//	POST   /orchestrators/{name}[/{id}]           start (202 + check-status payload; ?timeout= waits)
//	GET    /instances/{id}                        status (202 while running, 200 once ended)
//	DELETE /instances/{id}                        purge one (200 {"instancesDeleted":1})
//	GET    /instances                             list (filters; x-ms-continuation-token)
//	DELETE /instances                             purge many (createdTimeFrom required)
//	POST   /instances/{id}/raiseEvent/{event}     raise an event (application/json body)
//	POST   /instances/{id}/terminate?reason=      terminate
//	POST   /instances/{id}/suspend?reason=        suspend
//	POST   /instances/{id}/resume?reason=         resume
//	POST   /instances/{id}/restart                restart (restartWithNewInstanceId=true by default)
//	POST   /entities/{name}/{key}?op=             signal an entity (202)
//	DELETE /entities/{name}/{key}                 signal its "delete" operation (202)
//	GET    /entities/{name}/{key}                 an entity's state (404 without one)
//	GET    /entities[/{name}]                     list entities (x-ms-continuation-token)
//
// Where Durable Functions answers oddly, this API answers as HTTP means:
// an unknown instance is 404 everywhere (Durable Functions gives 400 on
// restart), a method a route does not take is 405 (it gives 404), purging
// a running instance is 409 (durable purges only ended instances), and
// Rewind is 501 (see durable.Client.Restart for why it is left out).
// Every error has the same JSON shape: {"code": "...", "message": "..."}.
//
// # Security
//
// With Config.Key set, every route needs it: in the x-functions-key
// header, as a bearer token, or in the code query parameter (as Durable
// Functions' system key). Serve refuses to listen on anything but loopback
// without a key. Unlike Durable Functions, the URLs of a check-status
// payload do not carry the key: a service that hands them to its own
// callers does not hand out its management key. Request bodies are
// limited (Config.MaxBodyBytes), the server has read and write timeouts,
// and the log holds methods, paths and statuses, never payloads or query
// strings (which may carry the key).
package httpapi
