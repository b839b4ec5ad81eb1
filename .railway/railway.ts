/**
 * Railway Infrastructure as Code for ebook-pool: the whole deployment (a Redis database and the
 * pool service) in one file. Apply it with the Railway CLI from the repository root:
 *
 *     npm ci --prefix .railway      # the `railway` SDK this file imports (railway/iac)
 *     railway config plan           # read-only preview
 *     railway config apply          # applies after confirmation
 *
 * README.md, "Deploying on Railway", walks through it from a fresh clone.
 *
 * HOW THIS FILE AND railway.toml COEXIST
 * --------------------------------------
 * Railway has two code-based configuration systems (docs.railway.com/infrastructure-as-code,
 * "IaC vs Config as Code"):
 *
 * - Config as Code (`railway.toml` / `railway.json`) configures one service, and Railway reads it
 *   from the repository at each deploy. It is deprecated: new services cannot opt into it, and
 *   existing files stopped being read on 2026-12-01 (hard cutoff).
 * - Infrastructure as Code (this file) configures the whole project/environment. A deploy does not
 *   evaluate it: the CLI does, and `railway config apply` writes the resulting settings to the
 *   services, where every later deploy finds them.
 *
 * A service cannot be managed by both: `railway config plan` stops on a service still managed by
 * Config as Code and names it. Railway's migration steps are: move the settings into this file,
 * remove the repo's config file for that service and clear the service's "Railway Config File"
 * setting (`railway config migrate --apply` "clears Railway Config File settings",
 * docs.railway.com/cli/config). For this repository, which keeps railway.toml at the top level:
 *
 * - A service created by this file is a new service. New services cannot opt into Config as Code,
 *   and since the cutoff no service reads the file, so the top-level railway.toml is inert for it:
 *   it does not configure its deploys and does not block `railway config plan`.
 * - A service that was deployed with railway.toml before the cutoff (an existing deployment of
 *   this project) is blocked until it is migrated: README.md gives the steps, and what
 *   `railway config migrate` drops (restart policy, draining time), which this file sets.
 * - railway.toml does not stop this file from being evaluated: `railway config` commands ignore
 *   it, except `railway config migrate`, which reads it to write a starting railway.ts; other
 *   commands (`railway up`) print a deprecation warning when they find it
 *   (`RAILWAY_CAC_DEPRECATION_WARNING=0` silences it).
 *
 * Keep the two in step while railway.toml stays in the repository: same start command, restart
 * policy and draining time. `.railway/railway.test.ts` checks this file's values offline in CI.
 *
 * Evaluation: the Railway CLI runs this file with Node 22.6+ (`--experimental-strip-types`), so it
 * uses only erasable TypeScript syntax, and it reads nothing from the environment. Names used
 * below (`ebook-pool`, `Redis`) are the Railway service names: for an existing project, make them
 * match the names on your canvas, or the plan will create new services (and, since this file
 * describes the whole environment, delete the ones it does not list).
 */
import { defineRailway, github, preserve, project, redis, service } from "railway/iac";

/** Railway service names (what the canvas shows). */
export const POOL_SERVICE = "ebook-pool";
export const REDIS_SERVICE = "Redis"; // the name Railway's Redis template uses: ${{Redis.REDIS_URL}}

/**
 * Deploy from GitHub on every push: set to "owner/repo" of your fork. Left null, the service has
 * no source and `railway up` deploys your local checkout (Railway's docs: "railway up deploys this
 * directory when the service has no GitHub or image source").
 */
export const GITHUB_REPO: string | null = null;
export const GITHUB_BRANCH = "main";

/** Pool processes; each runs CONCURRENT_WORKERS workers (pages written at once = the product). */
export const REPLICAS = 1;

/**
 * Graceful stop. On redeploy Railway sends SIGTERM to the old deployment, then SIGKILL after the
 * draining time (Railway's default is 0 s). The pool stops claiming, lets in-flight pages finish
 * for SHUTDOWN_GRACE, stores them, gives the rest back to the queue (a few seconds), and exits 0.
 * Draining = 20 s grace + ~5 s to store and give back + margin = 30 s. Raise both together;
 * railway.test.ts checks DRAINING_SECONDS * 1000 >= SHUTDOWN_GRACE_MS + 5000.
 */
export const SHUTDOWN_GRACE_MS = 20_000;
export const DRAINING_SECONDS = 30;

/**
 * Restart policy: a crash (non-zero exit) is restarted, at most 10 times; a graceful stop after
 * SIGTERM exits 0 and is not restarted. A bad variable exits 2 at start-up with one line naming it,
 * so it is restarted 10 times and then stays crashed (README.md, "A bad variable").
 * 10 is also the most Railway allows on the Free plan and trials (docs.railway.com/guides/restart-policy).
 */
export const RESTART_POLICY = "ON_FAILURE";
export const RESTART_MAX_RETRIES = 10;

/**
 * Health check. ASSUMED CONTRACT (the pool's HTTP server is built in another issue): when Railway
 * sets PORT, `python -m pool` serves GET /healthz (200 while the process runs) and /readyz on
 * 0.0.0.0:$PORT. Railway injects PORT and probes the path until it answers 200, and only then
 * makes the new deployment active; it does not probe again afterwards
 * (docs.railway.com/deployments/healthchecks). Until that server exists, a deploy with this
 * health check fails after HEALTHCHECK_TIMEOUT_S.
 */
export const HEALTHCHECK_PATH = "/healthz";
export const HEALTHCHECK_TIMEOUT_S = 120;

export default defineRailway((ctx) => {
  const cache = redis(REDIS_SERVICE);

  const pool = service(POOL_SERVICE, {
    ...(GITHUB_REPO ? { source: github(GITHUB_REPO, { branch: GITHUB_BRANCH }) } : {}),
    // Railpack detects Python from pyproject.toml + uv.lock and installs the locked production
    // set (`uv sync --locked --no-dev`: no dev group, no bench group), Python from .python-version.
    build: { builder: "RAILPACK" },
    // One pool process per replica; `python -m pool` is `ebook-pool run` (as the Procfile says).
    start: "python -m pool",
    replicas: REPLICAS,
    healthcheck: HEALTHCHECK_PATH,
    healthcheckTimeout: HEALTHCHECK_TIMEOUT_S,
    deploy: {
      restartPolicyType: RESTART_POLICY,
      restartPolicyMaxRetries: RESTART_MAX_RETRIES,
      drainingSeconds: DRAINING_SECONDS,
    },
    // Every variable the service keeps must be listed here: `railway config apply` deletes the
    // ones it does not list. Add tuning variables (CONCURRENT_WORKERS, OPENAI_MODEL, ...) as
    // literals, or as preserve() to keep a value you set in the dashboard.
    env: {
      // The database's private-network URL: ${{Redis.REDIS_URL}}.
      REDIS_URL: cache.env.REDIS_URL,
      // A secret: set it on Railway (dashboard or `railway variable set`), never in this file.
      // preserve() keeps whatever value Railway has.
      OPENAI_API_KEY: preserve(),
      LOG_FORMAT: "json",
      SHUTDOWN_GRACE: String(SHUTDOWN_GRACE_MS),
      // The draining time again, as the service variable Railway documents next to the setting
      // (docs.railway.com/deployments/deployment-teardown); both say the same number.
      RAILWAY_DEPLOYMENT_DRAINING_SECONDS: String(DRAINING_SECONDS),
    },
  });

  // Keep the linked project's name: this file must not rename a project it is applied to.
  return project(ctx.projectName ?? "ebook-pool", {
    resources: [cache, pool],
  });
});
