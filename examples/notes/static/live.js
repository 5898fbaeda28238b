// Put the notes that others add at the top of the list, as they are added (Server-Sent Events).
const list = document.getElementById("notes");
if (list) {
  const events = new EventSource(document.currentScript.dataset.events);
  events.addEventListener("note", (message) => {
    const note = JSON.parse(message.data);
    const link = document.createElement("a");
    link.href = note.url;
    link.textContent = note.title; // text, never HTML: a title is the user's input
    const item = document.createElement("li");
    item.append(link);
    list.querySelector(".empty")?.remove();
    list.prepend(item);
  });
}
