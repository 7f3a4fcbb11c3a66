"""Value measurement: scoring questionnaire items across roles (log-prob or generate-and-parse),
and the steering grid (roles x conditions) in the study's table schema.

`mechvalue.measure` is also the public `measure(...)` call (`mechvalue.research.measure`): the
package's name and the API's are the same, and importing the package binds it on `mechvalue`, so
the package itself is made callable rather than one shadowing the other."""

import sys
import types


class _CallablePackage(types.ModuleType):
    """This package, callable as `mechvalue.research.measure` (signature and help included)."""

    def __call__(self, *args, **kwargs):
        from mechvalue.research import measure

        return measure(*args, **kwargs)

    @property
    def __signature__(self):
        import inspect

        from mechvalue.research import measure

        return inspect.signature(measure)


sys.modules[__name__].__class__ = _CallablePackage
