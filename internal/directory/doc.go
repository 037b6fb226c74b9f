// Package directory owns every conversation with Microsoft Graph and the
// Microsoft identity platform: it turns a cloud, a tenant and one of the
// sign-in methods of --auth into a connected Client, tells from the
// token's claims whether the operator's permissions are granted (and explains
// Graph's 403s the same way), and reads the tenant's domains and users.
//
// Only the enqueuer imports it. Workers must never link it, because the
// product promises that workers hold no tenant credentials and do not carry
// the Graph SDK or azidentity.
//
// It deliberately imports only the Graph SDK packages it needs (users,
// domains, models, odataerrors and msgraph-sdk-go-core), never the SDK's root
// package, which would pull in ~84 generated packages and make every build of
// the enqueuer take minutes (docs/dependencies.md).
//
// It must not decide what to audit: address expansion, guest filtering and
// domain selection belong to package addresses and the enqueuer. It must never
// put a secret or an access token into an error or a log line.
package directory
