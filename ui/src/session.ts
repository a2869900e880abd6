/**
 * Who is using the page: a token pasted by the person (README "Sign in"), kept in this
 * tab only (sessionStorage: gone when the tab closes, never shared with other tabs or sent
 * anywhere but as the `authorization` metadata of our own calls).
 *
 * The page reads the token's claims only to show who is signed in and to hide what their
 * role may not do; it verifies nothing. The gateway and the services verify every call.
 */

const STORAGE_KEY = "weather-mesh.token";
/** The claim the services read roles from (meshkit/identity.py ROLES_CLAIM). */
const ROLES_CLAIM = "roles";

export type Role = "anonymous" | "viewer" | "operator";

/** What each role may open, in the order of the views. */
const RANK: Record<Role, number> = { anonymous: 0, viewer: 1, operator: 2 };

export interface Who {
  subject: string;
  role: Role;
  expiresAt: Date | null;
}

export const ANONYMOUS: Who = { subject: "", role: "anonymous", expiresAt: null };

function claimsOf(token: string): Record<string, unknown> | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The caller a token names, or null when it is not a JWT with a subject. */
export function whoIs(token: string): Who | null {
  const claims = claimsOf(token);
  const subject = claims?.["sub"];
  if (!claims || typeof subject !== "string" || subject === "") return null;
  const roles = claims[ROLES_CLAIM];
  const listed = Array.isArray(roles) ? roles : [roles];
  const role: Role = listed.includes("operator") ? "operator" : "viewer";
  const exp = claims["exp"];
  return { subject, role, expiresAt: typeof exp === "number" ? new Date(exp * 1000) : null };
}

export function mayOpen(who: Who, needed: Role): boolean {
  return RANK[who.role] >= RANK[needed];
}

export function currentToken(): string | null {
  const token = sessionStorage.getItem(STORAGE_KEY);
  if (!token) return null;
  const who = whoIs(token);
  if (!who || (who.expiresAt !== null && who.expiresAt.getTime() <= Date.now())) {
    sessionStorage.removeItem(STORAGE_KEY);
    return null;
  }
  return token;
}

export function currentWho(): Who {
  const token = currentToken();
  return (token && whoIs(token)) || ANONYMOUS;
}

/** Keep `token` for this tab; an error message when it cannot be a token. */
export function signIn(token: string): string | null {
  const trimmed = token.trim().replace(/^Bearer\s+/i, "");
  const who = whoIs(trimmed);
  if (!who) return "That is not a token: paste the whole value `make token` printed.";
  if (who.expiresAt !== null && who.expiresAt.getTime() <= Date.now()) {
    return "That token has expired: make a new one.";
  }
  sessionStorage.setItem(STORAGE_KEY, trimmed);
  return null;
}

export function signOut(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
