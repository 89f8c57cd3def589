"""Composing filter chains from config, once per runtime: the global chain and one per route.

The order is fixed: https_redirect (with ``tls.redirect_http``) → access_log → the route's
answers (allow/deny, then redirect) → the built-in rewrites (strip_prefix and rewrite, then
request_headers and response_headers, global rules before the route's) → rate_limit → cors →
security_headers → the user's ``filters`` (global ones, then the route's). So a refused or
redirected request is still logged and meets no other filter, the built-in rewrites of the
upstream request run before any filter's, and response_headers, running last on the way
out, has the last word. A route's section is merged over the global one (the keys it sets
win); a route that does not mention a section shares the global filter instance, so it
shares its state too (one set of rate-limit buckets).

Instances are kept in ``resources.filters`` by place in the config, class and settings: a
reload that leaves a filter where and as it was reuses the instance, and its state (buckets).
"""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

from fulcrum.config.errors import origin_note, problems_from_validation
from fulcrum.config.load import format_problem
from fulcrum.filters.access_control import AccessControl
from fulcrum.filters.base import Filter
from fulcrum.filters.chain import Chain
from fulcrum.filters.https_redirect import HttpsRedirect
from fulcrum.filters.redirect import Redirect
from fulcrum.filters.rewrite import RequestHeaders, ResponseHeaders, TargetRewrite
from fulcrum.filters.registry import resolve
from fulcrum.filters.resources import Resources

# Built-in sections, in chain order.
SECTIONS = ("access_log", "rate_limit", "cors", "security_headers")


class FilterBuilder:
    """Builds chains for one config, collecting problems instead of stopping at the first."""

    def __init__(self, config, resources: Resources, source: str, problems: list[str]) -> None:
        self.config = config
        self.resources = resources
        self.source = source
        self.problems = problems
        self.used: dict[tuple, Filter] = {}
        self.shared: dict[str, Filter | None] = {
            name: self._builtin(name, getattr(config, name), name) for name in SECTIONS
        }
        self.user = self._user_filters(config.filters, "filters")
        self.redirect = None
        if config.tls is not None and config.tls.redirect_http:
            self.redirect = HttpsRedirect(None, resources)
        # Stateless, so one instance serves every route that adds no rules of its own.
        self.request_headers = RequestHeaders([config.request_headers]) if config.request_headers else None
        self.response_headers = ResponseHeaders([config.response_headers]) if config.response_headers else None

    def chain(self, route, prefix: str) -> Chain:
        """The chain for ``route`` (None: the global chain; ``prefix`` locates its config)."""
        filters: list[Filter | None] = [self.redirect]  # before anything else: plain HTTP goes no further
        for name in SECTIONS:
            local = getattr(route, name) if route is not None else None
            if local is None:
                filters.append(self.shared[name])
            else:
                filters.append(self._builtin(name, self._merged(getattr(self.config, name), local),
                                             prefix + name))
            if name == "access_log":
                filters.extend(self._answers(route))
                filters.extend(self._rewrites(route))
        filters.extend(self.user)
        if route is not None:
            filters.extend(self._user_filters(route.filters, prefix + "filters"))
        return Chain([f for f in filters if f is not None])

    @staticmethod
    def _answers(route) -> list[Filter]:
        """What answers a route's requests itself: allow/deny, then redirect."""
        if route is None:
            return []
        answers: list[Filter] = []
        if route.allow is not None or route.deny is not None:
            answers.append(AccessControl(route.allow, route.deny))
        if route.redirect is not None:
            answers.append(Redirect(route.redirect))
        return answers

    def _rewrites(self, route) -> list[Filter | None]:
        """strip_prefix and rewrite, then the header rules: the global ones, then the route's."""
        if route is None:
            return [self.request_headers, self.response_headers]
        if route.redirect is not None:  # answered here: only the response is sent
            return [self._rules(route, "response_headers", ResponseHeaders, self.response_headers)]
        rewrites: list[Filter | None] = []
        strip = route.path_prefix if route.strip_prefix and route.path_prefix.rstrip("/") else None
        if strip is not None or route.rewrite is not None:
            rewrites.append(TargetRewrite(strip, route.rewrite))
        rewrites.append(self._rules(route, "request_headers", RequestHeaders, self.request_headers))
        rewrites.append(self._rules(route, "response_headers", ResponseHeaders, self.response_headers))
        return rewrites

    def _rules(self, route, key: str, cls, shared: Filter | None) -> Filter | None:
        local = getattr(route, key)
        if local is None:
            return shared
        return cls([getattr(self.config, key), local] if shared is not None else [local])

    @staticmethod
    def _merged(base: BaseModel | None, local: BaseModel) -> BaseModel:
        if base is None:
            return local
        values = base.model_dump(exclude_unset=True)
        values.update(local.model_dump(exclude_unset=True))
        return type(local).model_validate(values)

    def _builtin(self, name: str, options: BaseModel | None, where: str) -> Filter | None:
        if options is None or not options.enabled:
            return None
        return self._construct(resolve(name), options, where)

    def _user_filters(self, refs, where: str) -> list[Filter]:
        built = []
        for i, ref in enumerate(refs):
            path = f"{where}[{i}]"
            try:
                cls = resolve(ref.use)
            except ValueError as exc:
                self._problem(f"{path}.use", str(exc))
                continue
            options = None
            if cls.Options is not None:
                try:
                    options = cls.Options.model_validate(ref.options)
                except ValidationError as exc:
                    self.problems.extend(problems_from_validation(
                        exc, self.source, ref.options, self.config._env_origins,
                        prefix=f"{path}.options", root=cls.Options))
                    continue
            elif ref.options:
                self._problem(f"{path}.options", f"filter {ref.use!r} takes no options")
                continue
            instance = self._construct(cls, options, path)
            if instance is not None:
                built.append(instance)
        return built

    def _construct(self, cls: type[Filter], options, where: str) -> Filter | None:
        # Where it is configured, what it is and how: the same three after a reload mean the
        # same instance; two routes with equal settings still get one each.
        key = (where, cls, options.model_dump_json() if options is not None else None)
        instance = self.resources.filters.get(key)
        if instance is None:
            self.resources.building = key  # lets a filter name shared state after its place
            try:
                instance = cls(options, self.resources)
            except (ValueError, TypeError) as exc:
                self._problem(where, f"{cls.__name__}: {exc}")
                return None
            finally:
                self.resources.building = None
        self.used[key] = instance
        return instance

    def commit(self) -> None:
        """The chains are in use: keep exactly their filters for the next reload to find."""
        self.resources.filters = dict(self.used)

    def _problem(self, where: str, message: str) -> None:
        self.problems.append(format_problem(self.source, where, message + origin_note(where, self.config._env_origins)))
