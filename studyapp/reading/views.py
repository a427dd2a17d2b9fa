"""Reading pages (raters) and reader-study pages (coordinators). Thin: services decide.

Raters reach only their own open assignments; anything else is the same plain 404,
whether it does not exist, belongs to another reader or is not open yet.
"""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import Role

from . import selectors, services
from .forms import AddItemsForm, QuestionForm, ReadersForm, ReaderStudyForm, SettingsForm
from .models import Question, ReaderStudy

STAFF = (Role.COORDINATOR, Role.ADMIN)


# --- raters ------------------------------------------------------------------------------


@role_required(Role.RATER)
@require_GET
def next_item(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    study = selectors.studies_of_reader(request.user).filter(pk=reader_study_id).first()
    if study is None:
        raise Http404("No such item.")
    upcoming = services.next_assignment(study, request.user.pk)
    if upcoming is None:
        messages.info(request, "Nothing more to read now. Thank you!")
        return redirect("accounts:rater-home")
    return redirect("reading:read", assignment_id=upcoming.pk)


@role_required(Role.RATER)
@require_http_methods(["GET", "POST"])
def read(request: HttpRequest, assignment_id: int) -> HttpResponse:
    errors: dict[int, str] = {}
    posted: dict[int, str] = {}
    if request.method == "POST":
        # Submit first: a retried post of a submitted item returns its stored result.
        try:
            result = services.submit(
                request.user,
                assignment_id,
                request.POST,
                idempotency_key=request.POST.get("idempotency_key", ""),
                active_seconds=request.POST.get("active_seconds", 0),
            )
        except services.InvalidAnswers as exc:
            errors = exc.errors
            posted = {
                int(k[1:]): v for k, v in request.POST.items() if k[:1] == "q" and k[1:].isdigit()
            }
        except services.AnswerLocked as exc:
            messages.info(request, str(exc))
            return redirect("accounts:rater-home")
        except services.NotAvailable:
            raise Http404("No such item.") from None
        except services.ReadingError as exc:
            messages.error(request, str(exc))
            return redirect("reading:read", assignment_id=assignment_id)
        else:
            if result["next"]:
                return redirect("reading:read", assignment_id=result["next"])
            messages.success(request, "Session complete. Thank you!")
            return redirect("accounts:rater-home")
    try:
        assignment = services.open_assignment(request.user, assignment_id)
    except services.NotAvailable:
        raise Http404("No such item.") from None
    context = selectors.reading_context(assignment)
    questions = [
        {
            "question": question,
            "value": posted.get(question.pk, "" if value is None else value),
            "error": errors.get(question.pk, ""),
            "likert": list(zip(range(1, 6), question.options or [""] * 5, strict=True))
            if question.kind == "likert"
            else [],
        }
        for question, value in context["questions"]
    ]
    return render(
        request,
        "reading/read.html",
        {
            **context,
            "assignment": assignment,
            "questions": questions,
            "idempotency_key": uuid.uuid4().hex,
            "has_errors": bool(errors),
        },
        status=400 if errors else 200,
    )


@role_required(Role.RATER)
@require_GET
def blinded_model(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """The item's normalised GLB, under a fixed name, without dates or tags that could differ."""
    try:
        assignment = services.open_assignment(request.user, assignment_id)
    except services.NotAvailable:
        raise Http404("No such item.") from None
    item = assignment.item
    path = Path(settings.MEDIA_ROOT) / item.blinded_file.name if item.blinded_file else None
    if path is None or not path.is_file():
        raise Http404("No such item.")
    data = path.read_bytes()
    response = HttpResponse(content_type="model/gltf-binary")
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        data = gzip.compress(data, compresslevel=6, mtime=0)
        response["Content-Encoding"] = "gzip"
    response.content = data
    response["Content-Disposition"] = 'inline; filename="model.glb"'
    response["Cache-Control"] = "private, no-store"
    response["Vary"] = "Accept-Encoding"
    return response


# --- coordinators --------------------------------------------------------------------------


@role_required(*STAFF)
@require_GET
def study_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "reading/study_list.html", {"reader_studies": selectors.reader_studies()}
    )


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def study_create(request: HttpRequest) -> HttpResponse:
    form = ReaderStudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            study = services.create_reader_study(
                data.pop("study"), data.pop("title"), created_by=request.user, **data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Reader study {study.title} created with three Likert questions."
            )
            return redirect("reading:study-design", reader_study_id=study.pk)
    return render(
        request, "reading/study_form.html", {"form": form}, status=400 if form.errors else 200
    )


def _design_context(study: ReaderStudy, **forms) -> dict:
    candidates = services.eligible_reconstructions(study)
    return {
        "rs": study,
        "questions": study.questions.all(),
        "items": study.items.select_related("reconstruction__case").order_by("is_training", "code"),
        "settings_form": forms.get("settings_form") or SettingsForm(instance=study),
        "question_form": forms.get("question_form") or QuestionForm(),
        "readers_form": forms.get("readers_form")
        or ReadersForm(initial={"readers": study.readers.all()}),
        "items_form": forms.get("items_form") or AddItemsForm(candidates=candidates),
        "launch_problems": services.launch_problems(study) if not study.is_launched else [],
    }


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def study_design(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    """Design page; POST `action` = settings | question | readers | items | launch."""
    study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    if request.method == "GET":
        return render(request, "reading/study_design.html", _design_context(study))
    action = request.POST.get("action", "")
    handler = DESIGN_ACTIONS.get(action)
    if handler is None:
        return HttpResponse("Unknown action.", status=400)
    bound_forms = handler(request, study)
    if bound_forms is None:
        return redirect("reading:study-design", reader_study_id=study.pk)
    return render(
        request, "reading/study_design.html", _design_context(study, **bound_forms), status=400
    )


def _save_settings(request, study):
    form = SettingsForm(request.POST, instance=ReaderStudy.objects.get(pk=study.pk))
    if form.is_valid():
        try:
            services.update_settings(study, **form.cleaned_data)
            messages.success(request, "Settings saved.")
            return None
        except ValidationError as exc:
            form.add_error(None, exc)
    return {"settings_form": form}


def _add_question(request, study):
    form = QuestionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        bounds = {k: data[k] for k in ("minimum", "maximum", "step")}
        try:
            services.add_question(
                study,
                data["text"],
                data["kind"],
                required=data["required"],
                options=data["options"],
                **bounds,
            )
            messages.success(request, "Question added.")
            return None
        except ValidationError as exc:
            form.add_error(None, exc)
    return {"question_form": form}


def _set_readers(request, study):
    form = ReadersForm(request.POST)
    if form.is_valid():
        try:
            services.set_readers(study, form.cleaned_data["readers"])
            messages.success(request, f"{len(form.cleaned_data['readers'])} readers.")
            return None
        except ValidationError as exc:
            form.add_error(None, exc)
    return {"readers_form": form}


def _add_items(request, study):
    form = AddItemsForm(request.POST, candidates=services.eligible_reconstructions(study))
    if form.is_valid():
        try:
            items = services.add_items(
                study,
                form.chosen(),
                training=form.cleaned_data["training"],
                user_id=request.user.pk,
            )
            messages.success(
                request, f"{len(items)} items added; their blinded models are being built."
            )
            return None
        except ValidationError as exc:
            form.add_error(None, exc)
    return {"items_form": form}


def _launch(request, study):
    try:
        count = services.launch(study, actor=request.user)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return None
    messages.success(request, f"Launched: {count} assignments generated from the stored seed.")
    return None


DESIGN_ACTIONS = {
    "settings": _save_settings,
    "question": _add_question,
    "readers": _set_readers,
    "items": _add_items,
    "launch": _launch,
}


@role_required(*STAFF)
@require_POST
def question_delete(request: HttpRequest, reader_study_id: int, question_id: int) -> HttpResponse:
    question = get_object_or_404(Question, pk=question_id, reader_study_id=reader_study_id)
    try:
        services.delete_question(question)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("reading:study-design", reader_study_id=reader_study_id)


@role_required(*STAFF)
@require_GET
def progress(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    return render(
        request,
        "reading/progress.html",
        {"rs": study, "rows": selectors.progress_per_reader(study)},
    )


@role_required(*STAFF)
@require_POST
def reset_reader(request: HttpRequest, reader_study_id: int, reader_id: int) -> HttpResponse:
    study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    if not study.readers.filter(pk=reader_id).exists():
        raise Http404("No such reader in this study.")
    removed = services.reset_reader(study, reader_id, actor=request.user)
    messages.success(request, f"Reset: {removed} answers removed (recorded in the audit log).")
    return redirect("reading:progress", reader_study_id=study.pk)


@role_required(*STAFF)
@require_GET
def audit(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    return render(
        request, "reading/audit.html", {"rs": study, "events": selectors.audit_log(study)}
    )


@role_required(*STAFF)
@require_GET
def unblinding_key(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    response = HttpResponse(
        services.unblinding_key_csv(study, request.user), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="unblinding-key-{study.pk}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
