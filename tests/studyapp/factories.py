"""factory_boy factories for the platform's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from studyapp.cases.models import Case, Study
from studyapp.jobs.models import Job

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if not create:
            return
        for role in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=str(role))[0])
        if extracted and "admin" in {str(r) for r in extracted}:
            self.is_staff = True
        self.save()


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    name = factory.Sequence(lambda n: f"Study {n}")


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    study = factory.SubFactory(StudyFactory)
    code = factory.Sequence(lambda n: f"K{n:04d}")
    side = Case.Side.RIGHT
    split = Case.Split.TEST


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    kind = "jobs.selfcheck"
    params = factory.LazyFunction(lambda: {"steps": 1, "step_seconds": 0})


# --- reading (blinded reader studies) ----------------------------------------------------


def _write_media(relative: str, data: bytes) -> str:
    from pathlib import Path

    from django.conf import settings

    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return relative


class ReconstructionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "cases.Reconstruction"

    case = factory.SubFactory(CaseFactory)
    source = "ct"
    method = "test-method"
    status = "done"


class BoneModelFactory(factory.django.DjangoModelFactory):
    """A small closed mesh (a scaled icosphere) stored as STL in the media folder."""

    class Meta:
        model = "cases.BoneModel"

    reconstruction = factory.SubFactory(ReconstructionFactory)
    bone = "femur"
    vertex_count = 42
    face_count = 80
    volume_mm3 = 1.0
    area_mm2 = 1.0
    watertight = True
    sha256 = "0" * 64

    @factory.lazy_attribute
    def mesh(self):
        import uuid

        import trimesh

        sphere = trimesh.creation.icosphere(subdivisions=2, radius=8.0)
        offset = {"femur": (0, 0, 12), "tibia": (0, 0, -12), "fibula": (10, 0, -16)}
        sphere.apply_translation(offset.get(self.bone, (0, 10, 12)))
        return _write_media(f"meshes/{uuid.uuid4().hex}.stl", sphere.export(file_type="stl"))


def complete_reconstruction(case, source: str = "ct"):
    """A finished reconstruction of `case` with all four bone meshes."""
    reconstruction = ReconstructionFactory(case=case, source=source)
    for bone in ("femur", "tibia", "fibula", "patella"):
        BoneModelFactory(reconstruction=reconstruction, bone=bone)
    return reconstruction


class ReaderStudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "reading.ReaderStudy"

    study = factory.SubFactory(StudyFactory)
    title = factory.Sequence(lambda n: f"Reader study {n}")
    session_size = 4
    washout_days = 0
    seed = 1234


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "reading.Question"

    reader_study = factory.SubFactory(ReaderStudyFactory)
    text = factory.Sequence(lambda n: f"Question {n}")
    kind = "likert"
    order = factory.Sequence(lambda n: n)
    options = factory.LazyFunction(lambda: ["1", "2", "3", "4", "5"])


class ItemFactory(factory.django.DjangoModelFactory):
    """An item whose blinded file is a placeholder (no slow normalisation in unit tests)."""

    class Meta:
        model = "reading.Item"

    reader_study = factory.SubFactory(ReaderStudyFactory)
    reconstruction = factory.LazyAttribute(
        lambda o: ReconstructionFactory(case=CaseFactory(study=o.reader_study.study))
    )
    blinded_file = factory.LazyFunction(
        lambda: _write_media(f"reading/{__import__('uuid').uuid4().hex}.glb", b"glTF-placeholder")
    )
    blinded_bytes = 16
