// Blinded reading page: one knee model (four bones, fixed order femur, tibia, fibula, patella)
// shown with the same camera presets, lighting and material for every item, plus the
// keyboard-driven scoring form. Sets data-rendered="true" on the container once the first
// frame with the model is drawn (tests and benchmarks wait for it).
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

const BONE_COLOURS = [0xe8dcc4, 0xd9c9a8, 0xc9b68f, 0xf0e6d2];
// Patient frame (LPS): x to the patient's left, y posterior, z superior.
const VIEWS = {
  anterior: [0, -1, 0],
  posterior: [0, 1, 0],
  superior: [0, 0, 1],
  left: [1, 0, 0],
  right: [-1, 0, 0],
};

export function mountReadingViewer(container) {
  const started = performance.now();
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: false });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.setSize(container.clientWidth, container.clientHeight);
  container.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x20242c);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 1.6));
  const camera = new THREE.PerspectiveCamera(35, container.clientWidth / container.clientHeight, 1, 5000);
  // The key light follows the camera so every view is lit the same way.
  const key = new THREE.DirectionalLight(0xffffff, 1.4);
  key.position.set(0.4, 0.6, 1);
  camera.add(key);
  scene.add(camera);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = false;

  const bones = [];
  let radius = 100;
  let needsRender = true;
  let firstFrameDone = false;
  controls.addEventListener("change", () => (needsRender = true));

  function setView(name) {
    const side = container.dataset.side === "L" ? "L" : "R";
    // Medial points towards the body's midline: patient's left for a right knee.
    const key = name === "medial" ? (side === "R" ? "left" : "right") : name === "lateral" ? (side === "R" ? "right" : "left") : name;
    const direction = new THREE.Vector3(...VIEWS[key]);
    camera.up.set(0, 0, key === "superior" ? 0 : 1);
    if (key === "superior") camera.up.set(0, -1, 0);
    camera.position.copy(direction.multiplyScalar(radius * 2.6));
    controls.target.set(0, 0, 0);
    controls.update();
    needsRender = true;
  }

  new GLTFLoader().load(
    container.dataset.modelUrl,
    (gltf) => {
      gltf.scene.children.forEach((node, index) => {
        node.traverse((object) => {
          if (!object.isMesh) return;
          object.geometry.computeVertexNormals();
          object.material = new THREE.MeshStandardMaterial({
            color: BONE_COLOURS[index] ?? 0xdddddd,
            roughness: 0.6,
            metalness: 0.0,
          });
        });
        bones.push(node);
      });
      scene.add(gltf.scene);
      const sphere = new THREE.Box3().setFromObject(gltf.scene).getBoundingSphere(new THREE.Sphere());
      radius = Math.max(sphere.radius, 1);
      camera.near = radius / 50;
      camera.far = radius * 20;
      camera.updateProjectionMatrix();
      setView("anterior");
    },
    undefined,
    () => {
      container.dataset.error = "true";
      container.textContent = "The model could not be loaded. Reload the page.";
    },
  );

  renderer.setAnimationLoop(() => {
    if (!needsRender) return;
    needsRender = false;
    renderer.render(scene, camera);
    if (!firstFrameDone && bones.length) {
      firstFrameDone = true;
      container.dataset.firstFrameMs = String(Math.round(performance.now() - started));
      container.dataset.rendered = "true";
    }
  });
  window.addEventListener("resize", () => {
    camera.aspect = container.clientWidth / container.clientHeight;
    camera.updateProjectionMatrix();
    renderer.setSize(container.clientWidth, container.clientHeight);
    needsRender = true;
  });

  document.querySelectorAll("[data-view]").forEach((button) =>
    button.addEventListener("click", () => setView(button.dataset.view)),
  );
  document.querySelectorAll("[data-bone]").forEach((box) =>
    box.addEventListener("change", () => {
      const bone = bones[Number(box.dataset.bone)];
      if (bone) bone.visible = box.checked;
      needsRender = true;
    }),
  );
  // Rotation counter: tests check that dragging really rotated the camera.
  controls.addEventListener("end", () => {
    container.dataset.interactions = String(Number(container.dataset.interactions || 0) + 1);
  });
  return { setView };
}

// Active reading time: seconds with the page visible and an interaction in the last 30 s.
function trackActiveTime() {
  let active = 0;
  let lastInput = performance.now();
  ["pointermove", "pointerdown", "keydown", "wheel"].forEach((type) =>
    window.addEventListener(type, () => (lastInput = performance.now()), { passive: true }),
  );
  setInterval(() => {
    if (document.visibilityState === "visible" && performance.now() - lastInput < 30000) active += 1;
  }, 1000);
  return () => active;
}

function mountForm(form, viewer) {
  const activeSeconds = trackActiveTime();
  const questions = Array.from(form.querySelectorAll("[data-question]"));
  let current = Math.max(0, questions.findIndex((q) => !q.querySelector("input:checked")));
  const highlight = () => questions.forEach((q, i) => q.classList.toggle("active", i === current));
  highlight();
  questions.forEach((q, i) => q.addEventListener("click", () => ((current = i), highlight())));

  let submitting = false;
  form.addEventListener("submit", (event) => {
    if (submitting) {
      event.preventDefault(); // a double click sends one request (the server is idempotent anyway)
      return;
    }
    submitting = true;
    form.elements.active_seconds.value = String(activeSeconds());
  });

  document.addEventListener("keydown", (event) => {
    const typing = ["TEXTAREA", "SELECT"].includes(event.target.tagName) ||
      (event.target.tagName === "INPUT" && !["radio", "checkbox"].includes(event.target.type));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const question = questions[current];
    if (/^[1-5]$/.test(event.key) && question && question.dataset.kind === "likert") {
      const radio = question.querySelector(`input[value="${event.key}"]`);
      if (radio && !radio.disabled) {
        radio.checked = true;
        current = Math.min(current + 1, questions.length - 1);
        highlight();
      }
      event.preventDefault();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      current = Math.max(0, Math.min(questions.length - 1, current + (event.key === "ArrowDown" ? 1 : -1)));
      highlight();
      event.preventDefault();
    } else if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    } else if (viewer) {
      const views = { a: "anterior", p: "posterior", m: "medial", l: "lateral", s: "superior" };
      const view = views[event.key.toLowerCase()];
      if (view) viewer.setView(view);
    }
  });
}

const container = document.querySelector("[data-reading-viewer]");
const viewer = container ? mountReadingViewer(container) : null;
const form = document.getElementById("reading-form");
if (form) mountForm(form, viewer);
